//! An etcd user (`--cluster-user`): its password is exchanged for a token at
//! `/v3/auth/authenticate`, and the token goes with every request as the
//! `Authorization` header. The transport renews a token etcd calls stale (expired
//! after `--auth-token-ttl`, or issued before a change to users and roles) once per
//! request.
//!
//! The password is held here only: it is not `Debug`, not `Display`, and no error
//! carries it.

use std::fmt;
use std::sync::Mutex;

/// The user and password the gateway authenticates to etcd with, and the token it
/// has now.
pub struct EtcdUser {
    /// The etcd user name (`--cluster-user`).
    name: String,
    /// Its password (credential or environment; never the command line).
    password: String,
    /// The token of the last authentication, `None` before the first and after etcd
    /// called it stale.
    token: Mutex<Option<String>>,
}

impl fmt::Debug for EtcdUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdUser")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl EtcdUser {
    pub fn new(name: String, password: String) -> Self {
        Self {
            name,
            password,
            token: Mutex::new(None),
        }
    }

    pub(super) fn name(&self) -> &str {
        &self.name
    }

    pub(super) fn password(&self) -> &str {
        &self.password
    }

    /// The token to send, if one was had.
    pub(super) fn token(&self) -> Option<String> {
        self.slot().clone()
    }

    pub(super) fn remember(&self, token: &str) {
        *self.slot() = Some(token.to_owned());
    }

    /// Forgets `stale`, unless another request already replaced it.
    pub(super) fn forget(&self, stale: &str) {
        let mut slot = self.slot();
        if slot.as_deref() == Some(stale) {
            *slot = None;
        }
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.token.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_not_in_the_debug_form() {
        let user = EtcdUser::new("gw".into(), "hunter2-secret".into());
        let shown = format!("{user:?}");
        assert!(
            shown.contains("gw") && !shown.contains("hunter2"),
            "{shown}"
        );
    }

    #[test]
    fn a_stale_token_is_forgotten_only_if_still_current() {
        let user = EtcdUser::new("gw".into(), "p".into());
        user.remember("one");
        user.remember("two");
        user.forget("one");
        assert_eq!(user.token().as_deref(), Some("two"));
        user.forget("two");
        assert_eq!(user.token(), None);
    }
}
