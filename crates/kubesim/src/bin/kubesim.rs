fn main() {
    eprintln!("kubesim: not built yet");
    std::process::exit(1);
}
