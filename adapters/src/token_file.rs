//! Reading secrets from files: the token from `--token-file` or the systemd credential
//! `gateway-token`, the etcd user's password from the credential
//! `gateway-cluster-password` (both in `$CREDENTIALS_DIRECTORY`), so that neither sits
//! on a command line. Which source wins is the domain's (`token_source`).

use std::io::Read;
use std::path::{Path, PathBuf};

use gateway_domain::cluster::access::{
    ClusterPasswordError, PASSWORD_CREDENTIAL, PASSWORD_VARIABLE,
};
use gateway_domain::token_source::{
    TOKEN_CREDENTIAL, TokenFileError, TokenOrigin, first_token_source, token_in_file,
};

/// A token file larger than this holds something else.
const MAX_TOKEN_FILE: u64 = 64 * 1024;

/// The token and where it came from, in the domain's precedence: `command_line`
/// (`--token`), `token_file` (`--token-file`), the `gateway-token` credential, then
/// `environment` (`GATEWAY_TOKEN`). Only the file that wins is read; an empty
/// `--token` or `GATEWAY_TOKEN` counts as absent.
pub fn resolve_token(
    command_line: Option<&str>,
    token_file: Option<&Path>,
    environment: Option<&str>,
) -> Result<Option<(TokenOrigin, String)>, TokenFileError> {
    /// A token given as it is, or the file that holds it.
    enum Given<'a> {
        Text(&'a str),
        File(PathBuf),
    }
    fn text(token: Option<&str>) -> Option<Given<'_>> {
        token.filter(|t| !t.is_empty()).map(Given::Text)
    }
    let chosen = first_token_source(
        text(command_line),
        token_file.map(|path| Given::File(path.to_owned())),
        credential_path(TOKEN_CREDENTIAL).map(Given::File),
        text(environment),
    );
    Ok(match chosen {
        None => None,
        Some((origin, Given::Text(token))) => Some((origin, token.to_owned())),
        Some((origin, Given::File(path))) => Some((origin, read_token(origin, &path)?)),
    })
}

/// The password of `--cluster-user`: the credential `gateway-cluster-password` when
/// systemd passed one, else `GATEWAY_CLUSTER_PASSWORD` (non-empty), as the token's
/// credential ranks before its variable. MUST refuse a user without a password.
pub fn resolve_cluster_password(user: &str) -> Result<String, ClusterPasswordError> {
    if let Some(path) = credential_path(PASSWORD_CREDENTIAL) {
        let shown = path.display().to_string();
        return read_secret(&path).map_err(|problem| match problem {
            SecretProblem::Unreadable(reason) => ClusterPasswordError::Unreadable {
                path: shown,
                reason,
            },
            SecretProblem::Empty => ClusterPasswordError::Empty { path: shown },
        });
    }
    std::env::var(PASSWORD_VARIABLE)
        .ok()
        .filter(|password| !password.is_empty())
        .ok_or_else(|| ClusterPasswordError::Missing {
            user: user.to_owned(),
        })
}

/// A credential's path when systemd passed one (`LoadCredential=NAME:...`):
/// `$CREDENTIALS_DIRECTORY/NAME`, if that file exists and holds more than newlines.
pub fn credential_path(name: &str) -> Option<PathBuf> {
    given_credential(Path::new(&std::env::var_os("CREDENTIALS_DIRECTORY")?), name)
}

/// `directory/name` when it holds something besides newlines. A newline alone is the
/// shipped unit's `SetCredential=NAME:\n` default, which systemd writes when the
/// file `LoadCredential=` names does not exist (it fails the start otherwise, and
/// refuses an empty default): no credential given. A file that cannot be read is
/// given, so that reading it names the problem.
fn given_credential(directory: &Path, name: &str) -> Option<PathBuf> {
    let path = directory.join(name);
    let mut start = Vec::new();
    match std::fs::File::open(&path) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(_) => Some(path),
        Ok(file) => match file.take(MAX_TOKEN_FILE).read_to_end(&mut start) {
            Ok(_) if start.iter().all(|&byte| byte == b'\n' || byte == b'\r') => None,
            _ => Some(path),
        },
    }
}

/// The token in `path`, its trailing newline dropped. MUST refuse a file that cannot
/// be read or holds nothing but newlines.
pub fn read_token(origin: TokenOrigin, path: &Path) -> Result<String, TokenFileError> {
    read_secret(path).map_err(|problem| match problem {
        SecretProblem::Unreadable(reason) => TokenFileError::Unreadable {
            origin,
            path: path.display().to_string(),
            reason,
        },
        SecretProblem::Empty => TokenFileError::Empty {
            origin,
            path: path.display().to_string(),
        },
    })
}

/// Why a secret's file gave nothing.
enum SecretProblem {
    /// The OS's words.
    Unreadable(String),
    /// Nothing but newlines.
    Empty,
}

/// The secret in `path` (a token, a password), its trailing newline dropped.
fn read_secret(path: &Path) -> Result<String, SecretProblem> {
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_TOKEN_FILE).read_to_string(&mut text))
        .map_err(|error| SecretProblem::Unreadable(error.to_string()))?;
    token_in_file(&text)
        .map(str::to_owned)
        .ok_or(SecretProblem::Empty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_credential_is_given_when_its_file_holds_more_than_newlines() {
        let directory = std::env::temp_dir().join(format!("gateway-creds-{}", std::process::id()));
        std::fs::create_dir_all(&directory).unwrap();
        std::fs::write(directory.join("empty"), b"").unwrap();
        std::fs::write(directory.join("newline"), b"\n").unwrap();
        std::fs::write(directory.join("token"), b"s3cret\n").unwrap();
        assert_eq!(given_credential(&directory, "absent"), None);
        assert_eq!(given_credential(&directory, "empty"), None);
        assert_eq!(given_credential(&directory, "newline"), None);
        assert_eq!(
            given_credential(&directory, "token"),
            Some(directory.join("token"))
        );
        std::fs::remove_dir_all(&directory).unwrap();
    }

    #[test]
    fn a_missing_token_file_is_named_with_the_os_reason() {
        let error =
            read_token(TokenOrigin::File, Path::new("/nonexistent/gateway.token")).unwrap_err();
        assert!(
            error.to_string().starts_with(
                "cannot read the token from /nonexistent/gateway.token (--token-file): "
            ),
            "{error}"
        );
    }
}
