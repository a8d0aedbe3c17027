//! Storage backends. Each turns the Storage trait into one kind of place.

mod local;

pub use local::LocalStorage;
