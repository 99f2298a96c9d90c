//! How every fimlake file spells a setting's value: the server's configuration, the agent's,
//! rule and action-group files. One grammar per kind of value, so a value that is accepted in
//! one file is accepted in all of them.
//!
//! Durations ([`duration`]): humantime text (`"500ms"`, `"10s"`, `"15m"`, `"1h 30m"`, `"7d"`)
//! or a whole number of seconds (`300`).

pub mod duration;
