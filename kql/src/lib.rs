//! fimlake's KQL front end: lexing ([`lexer`], with nom), parsing ([`parser`]) into a syntax
//! tree ([`ast`]), with errors that say what was expected, where, and which valid KQL is not
//! supported ([`KqlError`]).
//!
//! The crate knows nothing of HTTP or storage.

pub mod ast;
pub mod error;
pub mod lexer;
pub mod optimize;
pub mod parser;
pub mod plan;
pub mod sexpr;
pub mod udf;

pub use error::{ErrorKind, KqlError, Span};
pub use optimize::{optimizer_rules, physical_optimizer_rules, session_state};
pub use parser::parse;
pub use plan::{Catalog, PlanOptions, TableList, plan_query, plan_query_with};
