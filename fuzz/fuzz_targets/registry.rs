//! `cargo fuzz run registry`: see [`gitship_fuzz::registry`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gitship_fuzz::registry(data));
