//! `cargo fuzz run yaml`: see [`gitship_fuzz::yaml`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gitship_fuzz::yaml(data));
