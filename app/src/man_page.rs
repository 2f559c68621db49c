//! The man pages, rendered from the command definition: `gateway(1)` with the
//! environment, exit codes and files, and one page per subcommand (`gateway-status(1)`, ...).
//! Only the tests render them: `dist/man/` holds them, and a test fails when they are stale.

use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, roman};

use crate::cli;

/// Every page: file name (`gateway.1`) and roff text.
pub fn pages() -> Vec<(String, Vec<u8>)> {
    let mut command = cli::command().disable_help_subcommand(true);
    command.build();
    let mut pages = vec![main_page(&command)];
    for subcommand in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        let man = Man::new(subcommand.clone());
        let mut text = Vec::new();
        man.render(&mut text)
            .unwrap_or_else(|_| unreachable!("writing to a Vec cannot fail"));
        pages.push((man.get_filename(), text));
    }
    pages
}

/// `gateway(1)`: clap's sections, then ENVIRONMENT, EXIT STATUS, FILES and SEE ALSO in
/// place of the `--help` epilogue.
fn main_page(command: &clap::Command) -> (String, Vec<u8>) {
    let man = Man::new(command.clone());
    let mut text = Vec::new();
    let rendered = man
        .render_title(&mut text)
        .and_then(|()| man.render_name_section(&mut text))
        .and_then(|()| man.render_synopsis_section(&mut text))
        .and_then(|()| man.render_description_section(&mut text))
        .and_then(|()| man.render_options_section(&mut text))
        .and_then(|()| man.render_subcommands_section(&mut text))
        .and_then(|()| extra_sections(command).to_writer(&mut text))
        .and_then(|()| man.render_version_section(&mut text));
    rendered.unwrap_or_else(|_| unreachable!("writing to a Vec cannot fail"));
    (man.get_filename(), text)
}

fn extra_sections(command: &clap::Command) -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["ENVIRONMENT"]);
    for (name, meaning) in cli::environment(command) {
        roff.control("TP", [])
            .text([bold(name)])
            .text([roman(meaning)]);
    }
    roff.control("SH", ["EXIT STATUS"]);
    for (code, meaning) in cli::EXIT_CODES {
        roff.control("TP", [])
            .text([bold(code.to_string())])
            .text([roman(meaning)]);
    }
    roff.control("SH", ["FILES"]);
    roff.control("TP", [])
        .text([bold("<state dir>/gateway.lock")])
        .text([roman(
            "The profile lock: held with flock for the gateway's lifetime; its text (pid, url, \
             port, start time) is for people. The state directory is --state-dir, \
             GATEWAY_STATE_DIR, $XDG_STATE_HOME/gateway/<profile> or \
             ~/.local/state/gateway/<profile>; under systemd /var/lib/gateway/<profile>.",
        )]);
    roff.control("TP", [])
        .text([bold("/usr/lib/systemd/system/gateway@.service")])
        .text([roman(
            "The system service, one instance per profile; gateway@.socket for socket activation.",
        )]);
    roff.control("TP", [])
        .text([bold("/etc/gateway/<profile>.env")])
        .text([roman(
            "Environment of the service instance (GATEWAY_PORT, GATEWAY_TOKEN, ...).",
        )]);
    roff.control("SH", ["SEE ALSO"]);
    let see_also: Vec<String> = command
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(|s| format!("gateway-{}(1)", s.get_name()))
        .chain([
            "systemd.service(5)".to_owned(),
            "systemd.socket(5)".to_owned(),
        ])
        .collect();
    roff.text([roman(see_also.join(", "))]);
    roff
}
