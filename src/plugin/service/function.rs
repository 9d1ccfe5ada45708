//! GetFunctions and CallFunction: the provider-defined functions.

use std::collections::HashMap;

use crate::framework::function::FunctionSignature;
use crate::plugin::wire::{self, types::type_to_json_bytes};

use super::{pb, ProviderService};

impl ProviderService {
    pub(super) fn functions(&self) -> HashMap<String, pb::Function> {
        self.server
            .function_signatures()
            .map(|(name, signature)| (name.to_string(), function_to_proto(signature)))
            .collect()
    }
}

pub(super) fn list(service: &ProviderService) -> pb::get_functions::Response {
    pb::get_functions::Response {
        functions: service.functions(),
        diagnostics: Vec::new(),
    }
}

pub(super) fn call(
    service: &ProviderService,
    request: pb::call_function::Request,
) -> pb::call_function::Response {
    let failed = |text: String, argument: Option<usize>| pb::call_function::Response {
        result: None,
        error: Some(pb::FunctionError {
            text,
            function_argument: argument.map(|a| a as i64),
        }),
    };
    let Some((function, signature)) = service.server.function(&request.name) else {
        let offered: Vec<&str> = service
            .server
            .function_signatures()
            .map(|(n, _)| n)
            .collect();
        let offered = if offered.is_empty() {
            "it declares none".to_string()
        } else {
            format!("it offers {}", offered.join(", "))
        };
        return failed(
            format!(
                "{} does not support a function {:?} ({offered})",
                service.server.provider_type_name(),
                request.name
            ),
            None,
        );
    };
    if request.arguments.len() != signature.parameters.len() {
        return failed(
            format!(
                "{} takes {} arguments, got {}",
                request.name,
                signature.parameters.len(),
                request.arguments.len()
            ),
            None,
        );
    }
    let mut arguments = Vec::with_capacity(request.arguments.len());
    for (index, (dv, parameter)) in request
        .arguments
        .iter()
        .zip(&signature.parameters)
        .enumerate()
    {
        match wire::decode_dynamic_value(Some(dv), &parameter.ty) {
            Ok(v) => arguments.push(v),
            Err(e) => return failed(format!("{}: {e}", parameter.name), Some(index)),
        }
    }
    match function.call(&arguments) {
        Ok(value) => match wire::encode_dynamic_value(&value, &signature.returns) {
            Ok(result) => pb::call_function::Response {
                result: Some(result),
                error: None,
            },
            Err(e) => failed(format!("encoding the result: {e}"), None),
        },
        Err(e) => failed(e.text, e.argument),
    }
}

/// A function signature as tfplugin5 declares it. No parameter takes null or unknown values:
/// Terraform then answers those itself (null is an error; unknown gives an unknown result).
fn function_to_proto(signature: &FunctionSignature) -> pb::Function {
    pb::Function {
        parameters: signature
            .parameters
            .iter()
            .map(|p| pb::function::Parameter {
                name: p.name.to_string(),
                r#type: type_to_json_bytes(&p.ty),
                allow_null_value: false,
                allow_unknown_values: false,
                description: p.description.to_string(),
                description_kind: pb::StringKind::Markdown as i32,
            })
            .collect(),
        variadic_parameter: None,
        r#return: Some(pb::function::Return {
            r#type: type_to_json_bytes(&signature.returns),
        }),
        summary: signature.summary.to_string(),
        description: signature.description.clone(),
        description_kind: pb::StringKind::Markdown as i32,
        deprecation_message: String::new(),
    }
}
