//! Collection responses: `{"value": [...], "nextLink": "<absolute url>"}` with a `$skiptoken`
//! that is simply the offset of the next page.

use serde_json::{json, Value};

use super::error::ErrorResponse;
use super::ArmRequest;

/// Upper bound for `$top`, as the policy RP documents.
const MAX_TOP: usize = 1000;

/// Slices `items` into the page the request asks for and links the next one.
pub(crate) fn page(
    items: Vec<Value>,
    req: &ArmRequest<'_>,
    default_page_size: usize,
) -> Result<Value, ErrorResponse> {
    let page_size = match req.http.query_param("$top") {
        None => default_page_size,
        Some(top) => match top.parse::<usize>() {
            Ok(n) if (1..=MAX_TOP).contains(&n) => n,
            _ => {
                return Err(ErrorResponse::bad_request(
                    "InvalidQueryParameterValue",
                    format!("The value '{top}' of query parameter '$top' is invalid; it must be an integer from 1 to {MAX_TOP}."),
                ))
            }
        },
    };
    let offset = match req.http.query_param("$skiptoken") {
        None => 0,
        Some(token) => token.parse::<usize>().map_err(|_| {
            ErrorResponse::bad_request(
                "InvalidSkipToken",
                format!("The skip token '{token}' is not valid for this collection."),
            )
        })?,
    };
    let total = items.len();
    let value: Vec<Value> = items.into_iter().skip(offset).take(page_size).collect();
    let next = offset + value.len();
    let mut body = json!({ "value": value });
    if next < total {
        body["nextLink"] = json!(next_link(req, next));
    }
    Ok(body)
}

/// The absolute URL of the page starting at `offset`, keeping the caller's query options.
fn next_link(req: &ArmRequest<'_>, offset: usize) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("api-version", &req.api_version);
    for (k, v) in &req.http.query {
        if k.eq_ignore_ascii_case("$filter") || k.eq_ignore_ascii_case("$top") {
            query.append_pair(k, v);
        }
    }
    query.append_pair("$skiptoken", &offset.to_string());
    format!("{}{}?{}", req.http.base_url, req.http.path, query.finish())
}
