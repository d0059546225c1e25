//! `score-client`: score a file through score-server.

fn main() {
    eprintln!("score-client: not implemented yet");
    std::process::exit(2);
}
