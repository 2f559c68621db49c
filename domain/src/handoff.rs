//! Restarting without letting go (docs/reference.md#restart): the decisions of a handoff.
//! When one may begin, when the old process gives up on its successor, who serves
//! afterwards, and the words the two processes (and `gateway restart`) exchange.
//! How descriptors cross `exec` is the adapters' business.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ports::{Successor, SuccessorLauncher};

/// How long a successor has to say that it serves before it is killed, unless
/// `--handoff-timeout` says otherwise.
pub const SUCCESSOR_DEADLINE: Duration = Duration::from_secs(10);

/// The environment variable that tells a process it was started by a handoff, and
/// which inherited descriptors are which.
pub const HANDOFF_ENV: &str = "GATEWAY_HANDOFF";

/// The refusal every extra restart request gets (exit 75 for `gateway restart`).
pub const ALREADY_IN_PROGRESS: &str = "a restart is already in progress";

/// The inherited descriptors of a successor, by number, as carried in
/// [`HANDOFF_ENV`]: `parent=PID;listeners=3,4;lock=5;control=6;report=7;stderr=8`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandoffSpec {
    /// The process that started the handoff (and still serves until told otherwise).
    pub parent: u32,
    /// Listening TCP sockets: the endpoint and its `[::1]` companion.
    pub listeners: Vec<i32>,
    /// The open profile lock file (the `flock` lives on its open file description).
    pub lock: i32,
    /// The listening control socket of `gateway restart`, when the parent had one.
    pub control: Option<i32>,
    /// The write end of the pipe on which the successor says "serving" or why not.
    pub report: i32,
    /// The parent's own stderr, to write to once the parent stops listening.
    pub stderr: i32,
    /// The cluster lease the parent holds as the active gateway, and its fencing
    /// token: the successor keeps it alive instead of taking a new one, so the token
    /// does not change across a restart.
    pub lease: Option<InheritedLease>,
    /// How many handoffs led to the successor, this one included (for `/metrics`).
    pub handoffs: u64,
    /// The successor's end of the session channel (sessions move with the restart),
    /// when the parent moves sessions.
    pub sessions: Option<i32>,
}

/// A cluster lease passed across a handoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InheritedLease {
    pub id: i64,
    pub fencing_token: u64,
}

impl HandoffSpec {
    pub fn to_env(&self) -> String {
        let listeners: Vec<String> = self.listeners.iter().map(i32::to_string).collect();
        let mut text = format!(
            "parent={};listeners={};lock={};control={};report={};stderr={}",
            self.parent,
            listeners.join(","),
            self.lock,
            self.control
                .map_or_else(|| "none".to_owned(), |fd| fd.to_string()),
            self.report,
            self.stderr
        );
        if let Some(lease) = self.lease {
            text.push_str(&format!(";lease={}:{}", lease.id, lease.fencing_token));
        }
        text.push_str(&format!(";handoffs={}", self.handoffs));
        if let Some(sessions) = self.sessions {
            text.push_str(&format!(";sessions={sessions}"));
        }
        text
    }

    /// Reads [`HANDOFF_ENV`]; `None` for anything malformed (a successor then
    /// reports the variable as unusable rather than guessing).
    pub fn parse(text: &str) -> Option<Self> {
        let field = |key: &str| {
            text.split(';')
                .find_map(|part| part.strip_prefix(key)?.strip_prefix('='))
        };
        let fd = |key: &str| field(key)?.parse::<i32>().ok().filter(|fd| *fd > 2);
        let listeners = field("listeners")?
            .split(',')
            .map(|n| n.parse::<i32>().ok().filter(|fd| *fd > 2))
            .collect::<Option<Vec<_>>>()?;
        if listeners.is_empty() {
            return None;
        }
        let spec = Self {
            parent: field("parent")?.parse().ok()?,
            listeners,
            lock: fd("lock")?,
            control: match field("control")? {
                "none" => None,
                _ => Some(fd("control")?),
            },
            report: fd("report")?,
            stderr: fd("stderr")?,
            lease: match field("lease") {
                None => None,
                Some(lease) => {
                    let (id, token) = lease.split_once(':')?;
                    Some(InheritedLease {
                        id: id.parse().ok()?,
                        fencing_token: token.parse().ok()?,
                    })
                }
            },
            handoffs: match field("handoffs") {
                None => 1,
                Some(count) => count.parse().ok()?,
            },
            sessions: match field("sessions") {
                None => None,
                Some(_) => Some(fd("sessions")?),
            },
        };
        // Each number is taken into ownership once: a number named twice would be
        // closed twice.
        let all = spec.descriptors();
        let distinct: std::collections::BTreeSet<i32> = all.iter().copied().collect();
        (distinct.len() == all.len()).then_some(spec)
    }

    /// Every inherited descriptor number.
    pub fn descriptors(&self) -> Vec<i32> {
        let mut all = self.listeners.clone();
        all.push(self.lock);
        all.extend(self.control);
        all.extend([self.report, self.stderr]);
        all.extend(self.sessions);
        all
    }
}

/// A successor could not be started at all: the program and the OS's reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{program}: {reason}")]
pub struct LaunchError {
    /// The executable tried.
    pub program: String,
    /// Why it could not be started (the OS error).
    pub reason: String,
}

/// What a successor writes on its report pipe: one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SuccessorWord {
    /// It adopted everything, serves, and rewrote the lock file.
    Serving,
    /// It could not; why.
    Failed(String),
}

impl SuccessorWord {
    pub fn to_line(&self) -> String {
        match self {
            Self::Serving => "serving\n".to_owned(),
            Self::Failed(reason) => format!("failed {}\n", reason.replace('\n', " / ")),
        }
    }

    pub fn parse(line: &str) -> Option<Self> {
        let line = line.trim_end_matches(['\r', '\n']);
        if line == "serving" {
            Some(Self::Serving)
        } else {
            line.strip_prefix("failed ")
                .map(|reason| Self::Failed(reason.to_owned()))
        }
    }
}

/// What became of a successor while the old process waited for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SuccessorReport {
    /// It serves: the old process may let go.
    Serving,
    /// It said it could not serve, and why.
    Failed(String),
    /// It ended (or closed its report pipe) without a word: how.
    Exited(String),
    /// No word within the deadline.
    TimedOut,
}

/// How a handoff ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandoffOutcome {
    /// The successor serves; the old process lets go of its listeners and clients.
    HandedOver { new_pid: u32 },
    /// The old process goes on serving as before.
    Failed(RestartFailure),
}

/// Why a restart did not happen, with the successor's last words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartFailure {
    pub reason: String,
    /// The successor's last stderr lines, when it wrote any.
    pub output: Vec<String>,
}

impl std::fmt::Display for RestartFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "restart failed: {}", self.reason)
    }
}

/// Starts a successor and waits for it within `deadline`. Anything but "serving"
/// kills it: the old process never lets go of a lock it cannot see taken over.
pub async fn hand_over<L: SuccessorLauncher>(launcher: &L, deadline: Duration) -> HandoffOutcome {
    let mut successor = match launcher.launch() {
        Ok(successor) => successor,
        Err(reason) => {
            return HandoffOutcome::Failed(RestartFailure {
                reason: format!("cannot start the new process: {reason}"),
                output: Vec::new(),
            });
        }
    };
    let report = successor.report(deadline).await;
    let who = match successor.pid() {
        Some(pid) => format!("the new process (pid {pid})"),
        None => "the new process".to_owned(),
    };
    let reason = match report {
        SuccessorReport::Serving => {
            return HandoffOutcome::HandedOver {
                new_pid: successor.pid().unwrap_or_default(),
            };
        }
        SuccessorReport::Failed(why) => format!("{who} failed: {why}"),
        SuccessorReport::Exited(how) => format!("{who} {how} before serving"),
        SuccessorReport::TimedOut => {
            format!("{who} did not serve within {}s", deadline.as_secs())
        }
    };
    successor.kill().await;
    HandoffOutcome::Failed(RestartFailure {
        reason,
        output: successor.last_output(),
    })
}

/// One restart at a time; and none from a process that was itself just started by a
/// handoff while its predecessor is still finishing (two old processes draining at
/// once, and a restart loop, are what this prevents).
#[derive(Debug, Default)]
pub struct RestartGate {
    in_progress: bool,
}

impl RestartGate {
    /// Takes the one restart slot. `predecessor_alive` says whether the process this
    /// one took over from is still there.
    pub fn try_begin(&mut self, predecessor_alive: bool) -> Result<(), &'static str> {
        if self.in_progress || predecessor_alive {
            return Err(ALREADY_IN_PROGRESS);
        }
        self.in_progress = true;
        Ok(())
    }

    /// A failed handoff gives the slot back; a successful one ends this process.
    pub fn end(&mut self) {
        self.in_progress = false;
    }
}

/// The control socket's answer to `gateway restart`: one JSON line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "outcome",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum RestartAnswer {
    /// Handed over: exit 0.
    Restarted { old_pid: u32, new_pid: u32 },
    /// The successor failed; the old process still serves: exit 1.
    Failed { reason: String, output: Vec<String> },
    /// Another restart is under way: exit 75.
    Busy { message: String },
}

#[cfg(test)]
mod tests {
    use super::*;
    use mockall::{Sequence, mock};

    mock! {
        Child {}
        #[async_trait::async_trait]
        impl Successor for Child {
            fn pid(&self) -> Option<u32>;
            async fn report(&mut self, within: Duration) -> SuccessorReport;
            async fn kill(&mut self);
            fn last_output(&self) -> Vec<String>;
        }
    }

    mock! {
        Launcher {}
        impl SuccessorLauncher for Launcher {
            type Successor = MockChild;
            fn launch(&self) -> Result<MockChild, LaunchError>;
        }
    }

    fn launcher_of(child: MockChild) -> MockLauncher {
        let mut launcher = MockLauncher::new();
        let mut child = Some(child);
        launcher
            .expect_launch()
            .times(1)
            .returning(move || Ok(child.take().expect("launched once")));
        launcher
    }

    fn child_reporting(report: SuccessorReport, killed: usize) -> MockChild {
        let mut child = MockChild::new();
        child.expect_pid().return_const(Some(4242u32));
        child
            .expect_report()
            .times(1)
            .returning(move |_| report.clone());
        child.expect_kill().times(killed).returning(|| ());
        child
            .expect_last_output()
            .returning(|| vec!["GatewayLockError: boom".to_owned()]);
        child
    }

    fn run(launcher: &MockLauncher) -> HandoffOutcome {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(hand_over(launcher, SUCCESSOR_DEADLINE))
    }

    #[test]
    fn a_successor_that_serves_takes_over_and_is_not_killed() {
        let launcher = launcher_of(child_reporting(SuccessorReport::Serving, 0));
        assert_eq!(run(&launcher), HandoffOutcome::HandedOver { new_pid: 4242 });
    }

    #[test]
    fn a_successor_that_fails_before_serving_is_killed_and_its_words_kept() {
        let launcher = launcher_of(child_reporting(
            SuccessorReport::Failed("cannot adopt the listeners".into()),
            1,
        ));
        let HandoffOutcome::Failed(failure) = run(&launcher) else {
            panic!("handed over to a failed successor")
        };
        assert_eq!(
            failure.to_string(),
            "restart failed: the new process (pid 4242) failed: cannot adopt the listeners"
        );
        assert_eq!(failure.output, ["GatewayLockError: boom"]);
    }

    #[test]
    fn a_successor_that_exits_is_reaped_and_the_old_one_serves_on() {
        let launcher = launcher_of(child_reporting(
            SuccessorReport::Exited("exited with code 3".into()),
            1,
        ));
        let HandoffOutcome::Failed(failure) = run(&launcher) else {
            panic!("handed over to an exited successor")
        };
        assert_eq!(
            failure.reason,
            "the new process (pid 4242) exited with code 3 before serving"
        );
    }

    /// A successor that says nothing until the deadline, then is killed (in that
    /// order); `pid` as it is known by then. Returns the failure's reason.
    fn silent_successor_reason(pid: Option<u32>) -> String {
        let mut child = MockChild::new();
        let mut order = Sequence::new();
        child.expect_pid().return_const(pid);
        child
            .expect_report()
            .withf(|within| *within == SUCCESSOR_DEADLINE)
            .times(1)
            .in_sequence(&mut order)
            .returning(|_| SuccessorReport::TimedOut);
        child
            .expect_kill()
            .times(1)
            .in_sequence(&mut order)
            .returning(|| ());
        child.expect_last_output().returning(Vec::new);
        let HandoffOutcome::Failed(failure) = run(&launcher_of(child)) else {
            panic!("handed over to a silent successor")
        };
        failure.reason
    }

    #[test]
    fn a_successor_that_never_answers_is_killed_after_the_deadline() {
        assert_eq!(
            silent_successor_reason(Some(7)),
            "the new process (pid 7) did not serve within 10s"
        );
    }

    #[test]
    fn a_successor_stuck_before_exec_is_killed_at_the_deadline_even_without_a_pid() {
        assert_eq!(
            silent_successor_reason(None),
            "the new process did not serve within 10s"
        );
    }

    #[test]
    fn a_launch_that_fails_leaves_nothing_to_kill() {
        let mut launcher = MockLauncher::new();
        launcher.expect_launch().returning(|| {
            Err(LaunchError {
                program: "/usr/bin/gateway".into(),
                reason: "No such file or directory (os error 2)".into(),
            })
        });
        let HandoffOutcome::Failed(failure) = run(&launcher) else {
            panic!("handed over to nothing")
        };
        assert_eq!(
            failure.to_string(),
            "restart failed: cannot start the new process: /usr/bin/gateway: No such file or directory (os error 2)"
        );
    }

    #[test]
    fn one_restart_at_a_time_and_none_while_the_predecessor_finishes() {
        let mut gate = RestartGate::default();
        assert_eq!(gate.try_begin(true), Err(ALREADY_IN_PROGRESS));
        assert_eq!(gate.try_begin(false), Ok(()));
        assert_eq!(gate.try_begin(false), Err(ALREADY_IN_PROGRESS));
        gate.end();
        assert_eq!(gate.try_begin(false), Ok(()));
    }

    #[test]
    fn the_handoff_spec_survives_the_environment() {
        let spec = HandoffSpec {
            parent: 99,
            listeners: vec![3, 4],
            lock: 5,
            control: Some(6),
            report: 7,
            stderr: 8,
            lease: None,
            handoffs: 2,
            sessions: None,
        };
        let text = spec.to_env();
        assert_eq!(
            text,
            "parent=99;listeners=3,4;lock=5;control=6;report=7;stderr=8;handoffs=2"
        );
        assert_eq!(HandoffSpec::parse(&text), Some(spec.clone()));
        let without_control = HandoffSpec {
            control: None,
            ..spec
        };
        assert_eq!(
            HandoffSpec::parse(&without_control.to_env()),
            Some(without_control.clone())
        );
        let with_lease = HandoffSpec {
            lease: Some(InheritedLease {
                id: 7_587_888_000_123,
                fencing_token: 42,
            }),
            ..without_control
        };
        assert!(with_lease.to_env().contains(";lease=7587888000123:42;"));
        assert_eq!(
            HandoffSpec::parse(&with_lease.to_env()),
            Some(with_lease.clone())
        );
        let with_sessions = HandoffSpec {
            sessions: Some(9),
            ..with_lease
        };
        assert!(with_sessions.to_env().ends_with(";sessions=9"));
        assert_eq!(with_sessions.descriptors().last(), Some(&9));
        assert_eq!(
            HandoffSpec::parse(&with_sessions.to_env()),
            Some(with_sessions)
        );
    }

    #[test]
    fn a_malformed_handoff_spec_is_refused_not_guessed() {
        for text in [
            "",
            "parent=1;listeners=;lock=5;control=6;report=7;stderr=8",
            "parent=1;listeners=3;lock=2;control=6;report=7;stderr=8",
            "parent=x;listeners=3;lock=5;control=6;report=7;stderr=8",
            "parent=1;listeners=3,a;lock=5;control=6;report=7;stderr=8",
            "parent=1;listeners=3;lock=5;control=6;report=7",
            "parent=1;listeners=3,5;lock=5;control=6;report=7;stderr=8",
            "parent=1;listeners=3;lock=5;control=6;report=7;stderr=8;lease=12",
            "parent=1;listeners=3;lock=5;control=6;report=7;stderr=8;lease=x:1",
        ] {
            assert_eq!(HandoffSpec::parse(text), None, "{text}");
        }
    }

    #[test]
    fn successor_words_are_one_line_each() {
        for word in [
            SuccessorWord::Serving,
            SuccessorWord::Failed("GatewayLockError: x".into()),
        ] {
            let line = word.to_line();
            assert_eq!(line.matches('\n').count(), 1);
            assert_eq!(SuccessorWord::parse(&line), Some(word));
        }
        assert_eq!(
            SuccessorWord::Failed("a\nb".into()).to_line(),
            "failed a / b\n"
        );
        assert_eq!(SuccessorWord::parse("hello"), None);
    }

    #[test]
    fn restart_answers_are_json_lines() {
        let answer = RestartAnswer::Restarted {
            old_pid: 1,
            new_pid: 2,
        };
        let text = serde_json::to_string(&answer).unwrap();
        assert_eq!(text, r#"{"outcome":"restarted","oldPid":1,"newPid":2}"#);
        assert_eq!(
            serde_json::from_str::<RestartAnswer>(&text).unwrap(),
            answer
        );
    }
}
