//! Storage backends. Each turns the Storage trait into one kind of place: a local directory,
//! or a repository behind `arca serve --stdio` (over SSH), whose server side is here too.

mod local;
pub mod remote;
pub mod serve;

pub use local::LocalStorage;
pub use remote::RemoteStorage;
