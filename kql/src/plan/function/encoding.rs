//! Encodings and hashes: `url_encode`, `url_decode`, `base64_*`, `hash_sha256`, `hash_md5`, `hash`.

use super::super::*;
use super::{Call, Function};

/// The encoding functions: names, number of arguments, planner.
pub(super) const FUNCTIONS: &[Function] = &[
    Function { names: &["url_encode", "url_encode_component", "url_decode"], arity: Some((1, 1)), plan: url },
    Function {
        names: &["base64_encode_tostring", "base64_encodestring", "base64_decode_tostring", "base64_decodestring"],
        arity: Some((1, 1)),
        plan: base64,
    },
    Function { names: &["hash_sha256", "hash_md5"], arity: Some((1, 1)), plan: digest },
    Function { names: &["hash"], arity: Some((1, 2)), plan: hash },
];

/// `url_encode`, `url_encode_component`, `url_decode`.
fn url(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    let text = call.text_arg(p, 0)?;
    Ok(match call.name.name.as_str() {
        "url_encode" => crate::udf::url_encode(text),
        "url_encode_component" => crate::udf::url_encode_component(text),
        _ => crate::udf::url_decode(text),
    })
}

/// `base64_encode_tostring`, `base64_decode_tostring` (and their older names).
fn base64(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    let text = call.text_arg(p, 0)?;
    Ok(if call.name.name.starts_with("base64_encode") {
        crate::udf::base64_encode(text)
    } else {
        crate::udf::base64_decode(text)
    })
}

/// `hash_sha256`, `hash_md5`: of the value's text.
fn digest(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    let text = call.text_arg(p, 0)?;
    Ok(if call.name.name == "hash_sha256" { crate::udf::hash_sha256(text) } else { crate::udf::hash_md5(text) })
}

/// `hash(s [, modulo])`: of a string (Kusto hashes other types by their binary form, which
/// fimlake does not reproduce: they are refused).
fn hash(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    let mut args = vec![call.typed_arg(p, 0, &[fimlake_kusto::KustoType::String])?];
    if call.args.len() == 2 {
        args.push(call.long_arg(p, 1)?);
    }
    Ok(crate::udf::hash(args))
}
