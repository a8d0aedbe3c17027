//! The `arca serve` protocol: frames and messages from a hostile peer, both directions.
#![no_main]
use arca_format::wire::{decode_message, read_frame, Request, Response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode_message::<Request>(data);
    let _ = decode_message::<Response>(data);
    let mut r = data;
    while let Ok(_) = read_frame::<Request>(&mut r) {}
});
