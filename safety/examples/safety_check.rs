//! Rates commands from a TSV (`level<TAB>shell<TAB>command`) or stdin and prints disagreements;
//! a quick way to try the validator on a new set: `cargo run -p caro-safety --example safety_check -- FILE`.

#![allow(clippy::print_stdout)]

use caro_safety::ShellType;
use caro_safety::{RiskLevel, validate};

fn main() -> std::io::Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/dev/stdin".into());
    let text = std::fs::read_to_string(path)?;
    let (mut total, mut agree) = (0, 0);
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() < 3 {
            continue;
        }
        let (Ok(want), Ok(shell)) = (cols[0].parse::<RiskLevel>(), cols[1].parse::<ShellType>())
        else {
            continue;
        };
        let cmd = cols[2].replace('⏎', "\n");
        let v = validate(&cmd, shell);
        total += 1;
        if v.risk == want {
            agree += 1;
        } else {
            println!(
                "want {want:<8} got {:<8} [{shell}] {cmd}  {:?}",
                v.risk,
                v.findings.iter().map(|f| &f.rule_id).collect::<Vec<_>>()
            );
        }
    }
    println!("{agree}/{total} agree");
    Ok(())
}
