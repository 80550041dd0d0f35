//! The `runner` command line. Logic lives in the library; this is parsing and printing.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
