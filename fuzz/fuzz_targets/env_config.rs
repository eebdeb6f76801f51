//! `cargo fuzz run env_config`: see [`gitship_fuzz::env_config`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gitship_fuzz::env_config(data));
