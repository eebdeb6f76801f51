//! `cargo fuzz run template`: see [`gitship_fuzz::template`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gitship_fuzz::template(data));
