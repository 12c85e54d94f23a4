//! Parsing a binary's command line and environment, where an empty variable is an unset one.
//!
//! Compose files pass optional settings through from the shell as `ADMIN_TOKEN: ${ADMIN_TOKEN:-}`,
//! which sets the variable to the empty string when the shell has none. clap takes an empty
//! variable as a value: an optional token became `Some("")` (logged as set, treated as unset),
//! an empty `HOOK_SECRET` stopped the producer as too short, and an empty number failed to
//! parse. Here a setting whose variable is empty is read as if the variable were absent: the
//! flag, else the default, else unset. (Such a variable is then not listed in that process'
//! `--help`, since clap reads a variable and lists it through the same link.)

use std::ffi::OsStr;

use clap::{Arg, Parser};

/// Parses `C` from the command line and the environment, empty variables taken as unset; on a
/// mistake, or for `--help` and `--version`, prints and exits as clap does.
pub fn parse<C: Parser>() -> C {
    let mut command = C::command().mut_args(|arg| unset_when(arg, is_empty));
    let mut matches = command.get_matches_mut();
    C::from_arg_matches_mut(&mut matches).unwrap_or_else(|e| e.format(&mut command).exit())
}

/// Whether the variable `name` is set to the empty string in this process' environment.
fn is_empty(name: &OsStr) -> bool {
    std::env::var_os(name).is_some_and(|value| value.is_empty())
}

/// `arg` without its variable when `empty` says the variable is empty.
fn unset_when(arg: Arg, empty: impl Fn(&OsStr) -> bool) -> Arg {
    match arg.get_env() {
        Some(name) if empty(name) => arg.env(None),
        _ => arg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Command;

    /// A command whose `--token` reads `PATH` (set in any test's environment).
    fn command(empty: impl Fn(&OsStr) -> bool + Copy) -> Command {
        Command::new("t")
            .arg(Arg::new("token").long("token").env("PATH"))
            .arg(Arg::new("n").long("n").env("PATH").default_value("7"))
            .mut_args(move |arg| unset_when(arg, empty))
    }

    #[test]
    fn a_variable_taken_as_empty_leaves_its_setting_unset_or_default() {
        let matches = command(|_| true).get_matches_from(["t"]);
        assert_eq!(matches.get_one::<String>("token"), None);
        assert_eq!(matches.get_one::<String>("n").unwrap(), "7");
    }

    #[test]
    fn a_flag_still_wins() {
        let matches = command(|_| true).get_matches_from(["t", "--token", "x"]);
        assert_eq!(matches.get_one::<String>("token").unwrap(), "x");
    }

    #[test]
    fn a_variable_with_a_value_is_read() {
        let matches = command(|_| false).get_matches_from(["t"]);
        assert!(matches.get_one::<String>("token").is_some());
        assert_ne!(matches.get_one::<String>("n").unwrap(), "7");
    }
}
