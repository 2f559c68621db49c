//! Which process owns a listening socket, as far as the OS lets us see.

/// A process, as the OS names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    pub pid: u32,
    /// The program name (`comm`), when readable.
    pub program: Option<String>,
}

/// What the OS shows about the listeners on a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortOwners {
    /// These processes hold a listening socket on the port.
    Visible(Vec<ProcessInfo>),
    /// A listening socket exists but its process is not visible to this user.
    Hidden,
    /// No listening socket on the port.
    None,
    /// No listening socket, and the port lies in the OS's ephemeral range
    /// (`low..=high`): the local end of an outgoing connection holds it.
    EphemeralRange { low: u16, high: u16 },
    /// The OS offers no way to look (not Linux, no /proc).
    Unknown,
}

impl PortOwners {
    /// The processes seen, if any.
    pub fn processes(&self) -> &[ProcessInfo] {
        match self {
            Self::Visible(processes) => processes,
            _ => &[],
        }
    }

    /// One line for people: `pid 42 (nginx)`, or why we cannot say.
    pub fn describe(&self) -> String {
        match self {
            Self::Visible(processes) => processes
                .iter()
                .map(|p| match &p.program {
                    Some(program) => format!("pid {} ({program})", p.pid),
                    None => format!("pid {}", p.pid),
                })
                .collect::<Vec<_>>()
                .join(", "),
            Self::Hidden | Self::Unknown => "a process not visible to this user".to_owned(),
            Self::None => "no listening process found".to_owned(),
            Self::EphemeralRange { low, high } => {
                format!("an outgoing connection (ephemeral port range {low}-{high})")
            }
        }
    }
}
