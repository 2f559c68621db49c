//! Where the token comes from, when several places could give it, and what a token
//! file may hold. Precedence, most explicit first: `--token` on the command line >
//! `--token-file` (or `GATEWAY_TOKEN_FILE`) > the systemd credential `gateway-token`
//! > `GATEWAY_TOKEN`. The first one present is used and the others are not read.

use std::fmt;

/// One place a token can come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenOrigin {
    /// `--token TOKEN`: readable by any local user in the process list.
    CommandLine,
    /// `--token-file FILE` or `GATEWAY_TOKEN_FILE`.
    File,
    /// `$CREDENTIALS_DIRECTORY/gateway-token` (systemd `LoadCredential=`).
    Credential,
    /// `GATEWAY_TOKEN`.
    Environment,
}

impl fmt::Display for TokenOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::CommandLine => "--token",
            Self::File => "--token-file",
            Self::Credential => "credential gateway-token",
            Self::Environment => "GATEWAY_TOKEN",
        })
    }
}

/// The name of the systemd credential that carries the token.
pub const TOKEN_CREDENTIAL: &str = "gateway-token";

/// The warning a start logs when the token was given with `--token`.
pub const COMMAND_LINE_TOKEN_WARNING: &str = "--token on the command line: any local user can read it from the process list \
     (use --token-file, the gateway-token credential or GATEWAY_TOKEN)";

/// The first source present in precedence order, among what the caller found:
/// `command_line`, `file`, `credential`, `environment`.
pub fn first_token_source<T>(
    command_line: Option<T>,
    file: Option<T>,
    credential: Option<T>,
    environment: Option<T>,
) -> Option<(TokenOrigin, T)> {
    command_line
        .map(|t| (TokenOrigin::CommandLine, t))
        .or_else(|| file.map(|t| (TokenOrigin::File, t)))
        .or_else(|| credential.map(|t| (TokenOrigin::Credential, t)))
        .or_else(|| environment.map(|t| (TokenOrigin::Environment, t)))
}

/// The token a file holds: its text without the trailing newline(s) an editor or
/// `echo` adds. `None` when nothing is left.
pub fn token_in_file(text: &str) -> Option<&str> {
    let token = text.trim_end_matches(['\n', '\r']);
    (!token.is_empty()).then_some(token)
}

/// A token file that cannot give a token: the start is refused (78).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenFileError {
    #[error("cannot read the token from {path} ({origin}): {reason}")]
    Unreadable {
        origin: TokenOrigin,
        path: String,
        reason: String,
    },
    #[error("the token file {path} ({origin}) is empty")]
    Empty { origin: TokenOrigin, path: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_beats_the_file_beats_the_credential_beats_the_environment() {
        assert_eq!(
            first_token_source(Some(1), Some(2), Some(3), Some(4)),
            Some((TokenOrigin::CommandLine, 1))
        );
        assert_eq!(
            first_token_source(None, Some(2), Some(3), Some(4)),
            Some((TokenOrigin::File, 2))
        );
        assert_eq!(
            first_token_source(None, None, Some(3), Some(4)),
            Some((TokenOrigin::Credential, 3))
        );
        assert_eq!(
            first_token_source(None, None, None, Some(4)),
            Some((TokenOrigin::Environment, 4))
        );
        assert_eq!(first_token_source::<u8>(None, None, None, None), None);
    }

    #[test]
    fn a_token_file_loses_its_trailing_newline_and_nothing_else() {
        assert_eq!(token_in_file("s3cret\n"), Some("s3cret"));
        assert_eq!(token_in_file("s3cret\r\n"), Some("s3cret"));
        assert_eq!(token_in_file("s3cret"), Some("s3cret"));
        assert_eq!(token_in_file(" s3 cret \n"), Some(" s3 cret "));
        assert_eq!(token_in_file("\n"), None);
        assert_eq!(token_in_file(""), None);
    }

    #[test]
    fn an_empty_token_file_is_named_with_its_origin() {
        let error = TokenFileError::Empty {
            origin: TokenOrigin::Credential,
            path: "/run/credentials/gateway@a.service/gateway-token".into(),
        };
        assert_eq!(
            error.to_string(),
            "the token file /run/credentials/gateway@a.service/gateway-token (credential gateway-token) is empty"
        );
    }
}
