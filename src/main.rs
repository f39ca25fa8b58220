//! The `helpline` binary: see `helpline --help`.

fn main() -> std::process::ExitCode {
    helpline::app::cli::main()
}
