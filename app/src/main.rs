//! `gateway`: parse the command line, run the daemon or an operation, exit with the
//! code of docs/reference.md#exit-codes.

fn main() {
    let started = tokio::time::Instant::now();
    let code = gateway::entry::run(started);
    // Exit without waiting for stragglers: whatever is left was already given up on,
    // and the OS releases the port and every lock with the process.
    std::process::exit(code.code());
}
