//! Randomized robustness tests for the parsers that see untrusted input: the msgpack and JSON
//! value decoders (Terraform → provider), the ConstraintTemplate YAML parser, the Rego compiler
//! front end and the ARM resource ID parser. Inputs are random bytes and mutations of valid
//! seeds; the only property checked is "returns, never panics" (plus a round trip for values
//! that decode). A failure prints the seed and the input so it can become a regression test.
//!
//! This is the stable-Rust stand-in for cargo-fuzz (whose coverage-guided mode needs nightly
//! sanitizer flags). `make test` runs a few thousand cases per target;
//! `make soak` runs each target for `FUZZ_SECONDS`. Pin a run with `FUZZ_SEED`.

use std::time::{Duration, Instant};

use akspolicy::arm::resource_id::{ResourceId, Scope};
use akspolicy::framework::Type;
use akspolicy::plugin::wire::{json as wire_json, msgpack};
use akspolicy::policy::constraint_template::ConstraintTemplate;
use akspolicy::policy::rego::{compile, RegoSource, RegoVersion};

/// xorshift64*: tiny, deterministic per seed, good enough to drive mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let len = self.below(max + 1);
        (0..len).map(|_| self.next() as u8).collect()
    }
}

fn seed() -> u64 {
    std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0x9e37_79b9)
                | 1
        })
}

/// Either `FUZZ_SECONDS` of work or `default_iters` cases.
struct Budget {
    until: Option<Instant>,
    iters: usize,
}

impl Budget {
    fn new(default_iters: usize) -> Budget {
        let secs = std::env::var("FUZZ_SECONDS")
            .ok()
            .and_then(|s| s.parse::<u64>().ok());
        Budget {
            until: secs.map(|s| Instant::now() + Duration::from_secs(s)),
            iters: default_iters,
        }
    }

    fn more(&mut self, done: usize) -> bool {
        match self.until {
            Some(t) => Instant::now() < t,
            None => done < self.iters,
        }
    }
}

/// Bytes, flipped, inserted, deleted, duplicated or spliced with interesting tokens.
fn mutate(rng: &mut Rng, input: &[u8], tokens: &[&[u8]]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..=rng.below(8) {
        match rng.below(7) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(v.len() + 1);
                v.insert(i, rng.next() as u8);
            }
            2 if !v.is_empty() => {
                let i = rng.below(v.len());
                let j = (i + rng.below(16)).min(v.len());
                v.drain(i..j);
            }
            3 if !v.is_empty() => {
                let i = rng.below(v.len());
                let j = (i + rng.below(32)).min(v.len());
                let chunk = v[i..j].to_vec();
                let at = rng.below(v.len() + 1);
                v.splice(at..at, chunk);
            }
            4 if !tokens.is_empty() => {
                let t = tokens[rng.below(tokens.len())];
                let at = rng.below(v.len() + 1);
                v.splice(at..at, t.iter().copied());
            }
            5 => v.truncate(rng.below(v.len() + 1)),
            _ => {
                let i = rng.below(v.len() + 1);
                let extra = rng.bytes(8);
                v.splice(i..i, extra);
            }
        }
    }
    v
}

/// Runs `check` on each generated input; a panic is reported with the seed and the input.
fn run(name: &str, seeds: &[Vec<u8>], tokens: &[&[u8]], iters: usize, check: impl Fn(&[u8])) {
    let s = seed();
    let mut rng = Rng(s);
    let mut budget = Budget::new(iters);
    let mut done = 0;
    while budget.more(done) {
        let input = if rng.below(4) == 0 || seeds.is_empty() {
            rng.bytes(64)
        } else {
            let pick = rng.below(seeds.len());
            mutate(&mut rng, &seeds[pick], tokens)
        };
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&input)));
        if outcome.is_err() {
            panic!(
                "{name}: panic with FUZZ_SEED={s} on input {:?} (bytes {:02x?})",
                String::from_utf8_lossy(&input),
                input
            );
        }
        done += 1;
    }
    eprintln!("{name}: {done} cases, FUZZ_SEED={s}");
}

fn schema_types() -> Vec<Type> {
    use std::collections::BTreeMap;
    let object = Type::Object(BTreeMap::from([
        ("name".to_string(), Type::String),
        ("count".to_string(), Type::Number),
        ("on".to_string(), Type::Bool),
        ("tags".to_string(), Type::map(Type::String)),
        (
            "items".to_string(),
            Type::list(Type::Object(BTreeMap::from([(
                "id".to_string(),
                Type::String,
            )]))),
        ),
        ("any".to_string(), Type::Dynamic),
    ]));
    vec![
        Type::String,
        Type::Number,
        Type::Bool,
        Type::Dynamic,
        Type::list(Type::String),
        Type::set(Type::Number),
        Type::map(Type::Dynamic),
        Type::Tuple(vec![Type::String, Type::Bool]),
        object,
    ]
}

fn value_seeds() -> Vec<Vec<u8>> {
    [
        r#"{"name":"a","count":1.5,"on":true,"tags":{"k":"v"},"items":[{"id":"x"}],"any":["string",[1,2]]}"#,
        r#"{"name":null,"count":-1e300,"on":false,"tags":null,"items":[],"any":null}"#,
        r#"["a","b"]"#,
        r#"{"a":1}"#,
        r#""ünïcødé 🚀""#,
        "123456789012345678901234567890",
        "true",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

#[test]
fn json_value_decoder_never_panics() {
    let types = schema_types();
    run(
        "json decode",
        &value_seeds(),
        &[
            b"{", b"}", b"[", b"]", b"\"", b"\\u0000", b"1e999", b"null", b",",
        ],
        20000,
        |input| {
            for ty in &types {
                if let Ok(v) = wire_json::decode(input, ty, true) {
                    // What decodes must encode again.
                    let _ = wire_json::encode(&v, ty);
                }
                let _ = wire_json::decode(input, ty, false);
            }
        },
    );
}

#[test]
fn msgpack_value_decoder_never_panics() {
    let types = schema_types();
    // Valid encodings of the JSON seeds, for each type they decode under.
    let mut seeds = Vec::new();
    for s in value_seeds() {
        for ty in &types {
            if let Ok(v) = wire_json::decode(&s, ty, true) {
                if let Ok(bytes) = msgpack::encode(&v, ty) {
                    seeds.push(bytes);
                }
            }
        }
    }
    run(
        "msgpack decode",
        &seeds,
        &[
            &[0xd4, 0x00, 0x00],                   // unknown value extension
            &[0xc0],                               // nil
            &[0xdd, 0xff, 0xff, 0xff, 0xff],       // array of 4 billion
            &[0xdf, 0x7f, 0xff, 0xff, 0xff],       // huge map
            &[0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0], // NaN
            &[0xd9, 0xff],                         // str8 longer than the input
        ],
        20000,
        |input| {
            for ty in &types {
                if let Ok(v) = msgpack::decode(input, ty) {
                    if let Ok(again) = msgpack::encode(&v, ty) {
                        let round = msgpack::decode(&again, ty);
                        assert!(round.is_ok(), "re-encoded value does not decode");
                    }
                }
            }
        },
    );
}

const TEMPLATE: &str = r#"apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8srequiredlabels
spec:
  crd:
    spec:
      names:
        kind: K8sRequiredLabels
      validation:
        openAPIV3Schema:
          type: object
          properties:
            labels:
              type: array
              items:
                type: string
  targets:
    - target: admission.k8s.gatekeeper.sh
      rego: |
        package k8srequiredlabels
        violation[{"msg": msg}] {
          provided := {label | input.review.object.metadata.labels[label]}
          required := {label | label := input.parameters.labels[_]}
          missing := required - provided
          count(missing) > 0
          msg := sprintf("missing labels: %v", [missing])
        }
"#;

#[test]
fn constraint_template_parser_never_panics() {
    run(
        "constraint template",
        &[TEMPLATE.as_bytes().to_vec()],
        &[
            b": ",
            b"\n- ",
            b"&a ",
            b"*a",
            b"!!binary ",
            b"{",
            b"[",
            b"'",
            b"\"",
            b"|\n",
            b"---\n",
            b"<<: *a\n",
            b"\t",
        ],
        5000,
        |input| {
            if let Ok(text) = std::str::from_utf8(input) {
                let _ = ConstraintTemplate::parse(text);
            }
        },
    );
}

#[test]
fn rego_front_end_never_panics() {
    let entry = r#"package k8sbad
violation[{"msg": msg}] {
  c := input.review.object.spec.containers[_]
  not startswith(c.image, "registry.example/")
  msg := sprintf("%v", [c.image])
}
"#;
    run(
        "rego compile",
        &[entry.as_bytes().to_vec()],
        &[
            b"{",
            b"}",
            b"[_]",
            b":=",
            b"import future.keywords\n",
            b"some x in ",
            b"\"",
            b"`",
            b"#",
        ],
        3000,
        |input| {
            if let Ok(text) = std::str::from_utf8(input) {
                for version in [RegoVersion::V0, RegoVersion::V1] {
                    let _ = compile(&RegoSource {
                        entry: text.to_string(),
                        libs: vec![],
                        version,
                    });
                }
            }
        },
    );
}

#[test]
fn resource_id_parser_never_panics() {
    let seeds: Vec<Vec<u8>> = [
        "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/prod",
        "/providers/Microsoft.Management/managementGroups/platform/providers/Microsoft.Authorization/policyAssignments/a",
        "/providers/Microsoft.Authorization/policyDefinitions/95edb821-ddaf-4404-9732-666045e056b4",
        "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/s/providers/Microsoft.Authorization/policyExemptions/e",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    run(
        "resource id",
        &seeds,
        &[
            b"/",
            b"//",
            b"providers",
            b"/subscriptions/",
            b"%2F",
            b"\xc3\xa9",
            b"?",
            b" ",
        ],
        20000,
        |input| {
            if let Ok(text) = std::str::from_utf8(input) {
                if let Ok(id) = ResourceId::parse(text) {
                    // Whatever parses must print back to something that parses.
                    let _ = ResourceId::parse(&id.to_string());
                }
                let _ = Scope::parse(text);
            }
        },
    );
}
