//! How a facerec binary reads its settings: arguments, then the environment
//! (clap's `env`), with a `--help` that names each variable without printing
//! a value. clap prints `[env: FACEREC_QUEUE=]` for every variable that is
//! unset, which reads as "set to nothing", and would print a set one's value
//! into a terminal or a log; the defaults are shown instead.

use clap::Command;

/// Parses `T` from the process's arguments and environment; `--help`,
/// `--version` and errors print and exit as clap's own `parse` does.
pub fn parse_settings<T: clap::Parser>() -> T {
    let matches = without_env_values(T::command()).get_matches();
    T::from_arg_matches(&matches).map_err(|e| e.format(&mut T::command())).unwrap_or_else(|e| e.exit())
}

/// The command, its subcommands included, with no environment value shown in help.
pub fn without_env_values(command: Command) -> Command {
    command.mut_args(|arg| arg.hide_env_values(true)).mut_subcommands(without_env_values)
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser, Subcommand};

    use super::*;

    #[derive(Parser)]
    struct Top {
        #[arg(long, env = "FACEREC_TEST_TOP", default_value = "a")]
        top: String,
        #[command(subcommand)]
        sub: Option<Sub>,
    }

    #[derive(Subcommand)]
    enum Sub {
        Go {
            #[arg(long, env = "FACEREC_TEST_SUB")]
            sub: Option<String>,
        },
    }

    #[test]
    fn help_names_variables_without_values_down_to_subcommands() {
        let mut command = without_env_values(Top::command());
        let help = command.render_help().to_string();
        assert!(help.contains("[env: FACEREC_TEST_TOP]") && !help.contains("FACEREC_TEST_TOP="), "{help}");
        let mut go = command.find_subcommand_mut("go").unwrap().clone();
        let help = go.render_help().to_string();
        assert!(help.contains("[env: FACEREC_TEST_SUB]") && !help.contains("FACEREC_TEST_SUB="), "{help}");
    }
}
