//! `pemba-difftest`: asks Pemba's engine and real SpiceDB the same questions about random cases
//! and reports every disagreement, shrunk, with the seed that reproduces it.

mod answers;
mod compare;
mod generate;
mod oracle;

use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(about = "Differential test of Pemba's engine against real SpiceDB")]
struct Args {
    /// How many cases to run.
    #[arg(long, default_value_t = 300, env = "DIFFTEST_CASES")]
    cases: u64,
    /// The first case's seed; case k uses seed + k.
    #[arg(long, default_value_t = 0, env = "DIFFTEST_SEED")]
    seed: u64,
    /// Print each case's schema, relationships and answers.
    #[arg(long)]
    verbose: bool,
    /// Also generate caveats (with written and request contexts) and expiring relationships.
    #[arg(long)]
    caveats: bool,
}

fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let mut oracle = oracle::Oracle::start()?;
    let (mut passed, mut failed) = (0u64, 0u64);
    for seed in args.seed..args.seed + args.cases {
        let case = generate::generate(seed, args.caveats);
        let ours = answers::evaluate(&case);
        let theirs = oracle.ask(&case)?;
        if args.verbose {
            println!(
                "seed {seed}\n{}\n{:#?}\nPemba: {ours:?}\nSpiceDB: {theirs:?}",
                case.schema, case.relationships
            );
        }
        match compare::disagreement(&case, &ours, &theirs) {
            None => passed += 1,
            Some(found) => {
                failed += 1;
                let shrunk = compare::shrink(&mut oracle, found)?;
                println!("DISAGREEMENT at seed {seed}");
                println!(
                    "  replay: cargo run -p pemba-difftest -- --seed {seed} --cases 1 --verbose{}",
                    if args.caveats { " --caveats" } else { "" }
                );
                println!(
                    "  shrunk case: {}",
                    serde_json::to_string_pretty(&shrunk.case)?
                );
                println!("  Pemba:   {}", shrunk.pemba);
                println!("  SpiceDB: {}", shrunk.spicedb);
            }
        }
    }
    println!("difftest: {passed} passed, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
