//! Reading the token from a file: `--token-file`, or the systemd credential
//! `gateway-token` in `$CREDENTIALS_DIRECTORY`, so that it never sits on a command
//! line. Which source wins is the domain's (`token_source`).

use std::io::Read;
use std::path::{Path, PathBuf};

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
        credential_path().map(Given::File),
        text(environment),
    );
    Ok(match chosen {
        None => None,
        Some((origin, Given::Text(token))) => Some((origin, token.to_owned())),
        Some((origin, Given::File(path))) => Some((origin, read_token(origin, &path)?)),
    })
}

/// The credential's path when systemd passed one (`LoadCredential=gateway-token:...`):
/// `$CREDENTIALS_DIRECTORY/gateway-token`, if that file exists.
pub fn credential_path() -> Option<PathBuf> {
    let directory = std::env::var_os("CREDENTIALS_DIRECTORY")?;
    let path = Path::new(&directory).join(TOKEN_CREDENTIAL);
    path.exists().then_some(path)
}

/// The token in `path`, its trailing newline dropped. MUST refuse a file that cannot
/// be read or holds nothing but newlines.
pub fn read_token(origin: TokenOrigin, path: &Path) -> Result<String, TokenFileError> {
    let unreadable = |reason: String| TokenFileError::Unreadable {
        origin,
        path: path.display().to_string(),
        reason,
    };
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_TOKEN_FILE).read_to_string(&mut text))
        .map_err(|error| unreadable(error.to_string()))?;
    token_in_file(&text)
        .map(str::to_owned)
        .ok_or_else(|| TokenFileError::Empty {
            origin,
            path: path.display().to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

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
