//! The `kafee` command-line tool.
#![forbid(unsafe_code)]

fn main() {
    eprintln!("kafee CLI: not built yet (tracked in issue 6)");
    std::process::exit(2);
}
