//! Provider function `provider::akspolicy::evaluate(template, object, parameters)`: the
//! violations a Gatekeeper ConstraintTemplate reports for one object, for unit tests of custom
//! policies in `terraform test`, `check` blocks and outputs (Terraform 1.8+). Pure: it needs no
//! provider configuration and calls nothing remote.

use serde_json::Value as Json;

use crate::framework::{
    Function, FunctionError, FunctionParameter, FunctionSignature, Type, Value,
};
use crate::policy::constraint_template::{parse_yaml, CompileCache, ConstraintTemplate};
use crate::policy::rego;

use super::shared::parameter_values::value_to_json;

pub struct EvaluateFunction;

const TEMPLATE: usize = 0;
const OBJECT: usize = 1;
const PARAMETERS: usize = 2;

impl Function for EvaluateFunction {
    fn name(&self) -> &'static str {
        "evaluate"
    }

    fn signature(&self) -> FunctionSignature {
        FunctionSignature {
            parameters: vec![
                FunctionParameter {
                    name: "template",
                    ty: Type::String,
                    description: "A Gatekeeper ConstraintTemplate as YAML, e.g. `akspolicy_kubernetes_definition.x.rendered_template` or `file(\"template.yaml\")`.",
                },
                FunctionParameter {
                    name: "object",
                    ty: Type::String,
                    description: "One Kubernetes manifest, or an `admission.k8s.io/v1` AdmissionReview, as YAML or JSON.",
                },
                FunctionParameter {
                    name: "parameters",
                    ty: Type::Dynamic,
                    description: "The constraint's parameters as an object of plain values (`{}` for none).",
                },
            ],
            returns: Type::list(Type::String),
            summary: "Violation messages of a ConstraintTemplate for one Kubernetes object",
            description: "Evaluates the template's Rego for `object` with `parameters` as Gatekeeper \
                          would (`input.review`, `input.parameters`), and returns the violation \
                          messages, empty when the object is admitted. Match rules (kinds, \
                          namespaces) are not applied: the object is always reviewed. No cluster \
                          objects are visible (`data.inventory` is empty)."
                .to_string(),
        }
    }

    fn call(&self, arguments: &[Value]) -> Result<Value, FunctionError> {
        let text = |index: usize| arguments.get(index).and_then(Value::as_str).unwrap_or("");
        let template = ConstraintTemplate::parse(text(TEMPLATE)).map_err(|e| {
            FunctionError::argument(TEMPLATE, format!("not a usable ConstraintTemplate: {e}"))
        })?;
        let object = parse_yaml(text(OBJECT)).map_err(|e| {
            FunctionError::argument(OBJECT, format!("not a YAML or JSON document: {e}"))
        })?;
        if !object.get("kind").is_some_and(Json::is_string) {
            return Err(FunctionError::argument(
                OBJECT,
                "not a Kubernetes object: it needs `kind` (and `apiVersion`, `metadata`)",
            ));
        }
        let parameters = arguments
            .get(PARAMETERS)
            .map(value_to_json)
            .transpose()
            .map_err(|e| FunctionError::argument(PARAMETERS, e.to_string()))?
            .unwrap_or(Json::Null);
        let parameters = match parameters {
            Json::Null => Json::Object(Default::default()),
            p @ Json::Object(_) => p,
            other => {
                return Err(FunctionError::argument(
                    PARAMETERS,
                    format!(
                        "must be an object of parameter values (`{{}}` for none), not {}",
                        crate::policy::parameters::json_kind(&other)
                    ),
                ))
            }
        };
        let compiled = CompileCache::process()
            .get(&template)
            .map_err(|e| FunctionError::argument(TEMPLATE, format!("its Rego: {e}")))?;
        let violations = compiled
            .evaluate(
                &rego::review_for(&object),
                &parameters,
                &rego::inventory_from(&[]),
            )
            .map_err(|e| FunctionError {
                text: format!("evaluating the template: {e}"),
                argument: None,
            })?;
        Ok(Value::string_list(violations.into_iter().map(|v| v.msg)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE_YAML: &str = r#"
apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8snoprivileged
spec:
  crd:
    spec:
      names:
        kind: K8sNoPrivileged
      validation:
        openAPIV3Schema:
          type: object
          properties:
            exempt:
              type: array
              items: {type: string}
  targets:
    - target: admission.k8s.gatekeeper.sh
      rego: |
        package k8snoprivileged
        violation[{"msg": msg}] {
          c := input.review.object.spec.containers[_]
          c.securityContext.privileged
          not exempt(c.name)
          msg := sprintf("container %v is privileged", [c.name])
        }
        exempt(name) { input.parameters.exempt[_] == name }
"#;

    fn pod(privileged: bool) -> Value {
        Value::string(format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers:\n    - name: app\n      image: nginx\n      securityContext: {{privileged: {privileged}}}\n"
        ))
    }

    fn call(object: Value, parameters: Value) -> Result<Value, FunctionError> {
        EvaluateFunction.call(&[Value::string(TEMPLATE_YAML), object, parameters])
    }

    #[test]
    fn one_message_for_a_violating_pod_none_for_a_clean_one() {
        let empty = Value::Object(Default::default());
        assert_eq!(
            call(pod(true), empty.clone()).expect("evaluates"),
            Value::string_list(["container app is privileged"])
        );
        assert_eq!(
            call(pod(false), empty).expect("evaluates"),
            Value::string_list(Vec::<String>::new())
        );
        let exempt = Value::object([("exempt", Value::Tuple(vec![Value::string("app")]))]);
        assert_eq!(
            call(pod(true), exempt).expect("evaluates"),
            Value::string_list(Vec::<String>::new())
        );
    }

    #[test]
    fn bad_arguments_name_the_argument() {
        let empty = Value::Object(Default::default());
        let err = EvaluateFunction
            .call(&[Value::string("kind: Nope"), pod(true), empty.clone()])
            .expect_err("bad template");
        assert_eq!(err.argument, Some(TEMPLATE));
        let err = call(Value::string("- a\n- b"), empty).expect_err("bad object");
        assert_eq!(err.argument, Some(OBJECT));
        let err = call(pod(true), Value::string("x")).expect_err("bad parameters");
        assert_eq!(err.argument, Some(PARAMETERS));
    }
}
