//! `cargo fuzz run skaffold`: see [`gitship_fuzz::skaffold`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gitship_fuzz::skaffold(data));
