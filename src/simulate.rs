//! `helpline simulate`: replays an arrival pattern through the real routing engine in virtual time against a roster. (Being written.)

/// Options of `helpline simulate`.
#[derive(clap::Args, Debug)]
pub struct SimulateArgs {}

/// Runs the simulation and prints its report.
pub async fn run(_database: &str, _args: SimulateArgs) -> anyhow::Result<()> {
    anyhow::bail!("helpline simulate is not finished yet")
}
