//! The providers' OpenAPI 3.0 documents (`tests/apis/*.yaml`) turned into request and
//! response validators.
//!
//! Each operation is found by method and path template. Its parameters, JSON request body
//! and 2xx JSON response are checked with JSON Schema (draft 2020-12, through the
//! `jsonschema` crate) after converting the OpenAPI dialect:
//! `#/components/...` references are inlined, `nullable: true` adds `null`,
//! `readOnly` properties are not required in requests, `writeOnly` properties are neither
//! required nor allowed in responses, OpenAPI 3.0's boolean `exclusiveMinimum/Maximum`
//! become numbers, and `example`, `discriminator` and `x-*` are dropped. `format` is an
//! annotation only, as in draft 2020-12.

use jsonschema::Validator;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Which side of the exchange a schema describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Request,
    Response,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Location {
    Path,
    Query,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    String,
    Number,
    Integer,
    Boolean,
}

struct Param {
    name: String,
    location: Location,
    required: bool,
    kind: Kind,
    validator: Validator,
}

struct Body {
    required: bool,
    /// `None` for a declared JSON body without a schema (anything goes).
    validator: Option<Validator>,
}

/// One HTTP operation of the document.
pub struct Operation {
    pub id: String,
    pub method: String,
    pub template: String,
    segments: Vec<Segment>,
    params: Vec<Param>,
    body: Option<Body>,
    /// Response key ("200", "4XX", "default") and the JSON body validator, `None` when the
    /// response declares no content.
    responses: Vec<(String, Option<Validator>)>,
}

impl std::fmt::Debug for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} ({})", self.method, self.template, self.id)
    }
}

/// A request that passed validation, with its decoded parts.
#[derive(Debug)]
pub struct Checked {
    pub path_params: BTreeMap<String, String>,
    pub query: BTreeMap<String, String>,
    /// The parsed JSON body, `Value::Null` when there was none.
    pub body: Value,
}

/// A loaded OpenAPI document.
pub struct Spec {
    doc: Value,
    operations: Vec<Operation>,
}

impl std::fmt::Debug for Spec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spec")
            .field("operations", &self.operations)
            .finish()
    }
}

const METHODS: [&str; 7] = ["get", "put", "post", "delete", "patch", "head", "options"];

impl Spec {
    /// Parses a YAML OpenAPI 3.0 document and compiles every operation's validators.
    pub fn load(yaml: &str) -> Spec {
        let parsed: serde_yaml::Value = serde_yaml::from_str(yaml).expect("OpenAPI YAML parses");
        let doc = yaml_to_json(parsed);
        let mut operations = Vec::new();
        let paths = doc["paths"].as_object().expect("paths").clone();
        for (template, item) in &paths {
            let item = resolve(&doc, item);
            let shared_params = item["parameters"].as_array().cloned().unwrap_or_default();
            for method in METHODS {
                let Some(op) = item.get(method) else { continue };
                operations.push(compile_operation(
                    &doc,
                    template,
                    method,
                    op,
                    &shared_params,
                ));
            }
        }
        Spec { doc, operations }
    }

    pub fn operations(&self) -> impl Iterator<Item = &Operation> {
        self.operations.iter()
    }

    /// The operation for a method and an API path (no server prefix, still
    /// percent-encoded), with the decoded path parameters. Literal segments win over
    /// parameters when two templates match.
    pub fn find(&self, method: &str, path: &str) -> Option<(&Operation, BTreeMap<String, String>)> {
        let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        let mut best: Option<(&Operation, BTreeMap<String, String>, usize)> = None;
        for op in &self.operations {
            if !op.method.eq_ignore_ascii_case(method) || op.segments.len() != parts.len() {
                continue;
            }
            let mut params = BTreeMap::new();
            let mut literals = 0;
            let matched = op.segments.iter().zip(&parts).all(|(seg, part)| match seg {
                Segment::Literal(l) => {
                    literals += 1;
                    l == part
                }
                Segment::Param(name) => {
                    if part.is_empty() {
                        return false;
                    }
                    params.insert(name.clone(), percent_decode(part, false));
                    true
                }
            });
            if matched && best.as_ref().is_none_or(|(_, _, l)| literals > *l) {
                best = Some((op, params, literals));
            }
        }
        best.map(|(op, params, _)| (op, params))
    }

    /// Whether some operation has this path, under any method.
    pub fn has_path(&self, path: &str) -> bool {
        METHODS.iter().any(|m| self.find(m, path).is_some())
    }

    /// A validator for one component, e.g. `#/components/schemas/error`.
    pub fn component_validator(&self, pointer: &str, direction: Direction) -> Validator {
        let schema = convert(&self.doc, &json_ref(pointer), direction, 0);
        compile(&schema, pointer)
    }
}

impl Operation {
    /// Validates parameters, query and body. `Err` lists every problem found.
    pub fn check_request(
        &self,
        path_params: BTreeMap<String, String>,
        raw_query: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Checked, Vec<String>> {
        let mut problems = Vec::new();
        let mut query = BTreeMap::new();
        for pair in raw_query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            query.insert(percent_decode(k, true), percent_decode(v, true));
        }
        for name in query.keys() {
            if !self
                .params
                .iter()
                .any(|p| p.location == Location::Query && &p.name == name)
            {
                problems.push(format!("unknown query parameter `{name}`"));
            }
        }
        for param in &self.params {
            let value = match param.location {
                Location::Path => path_params.get(&param.name),
                Location::Query => query.get(&param.name),
            };
            let Some(value) = value else {
                if param.required {
                    problems.push(format!("missing required parameter `{}`", param.name));
                }
                continue;
            };
            let typed = coerce(value, param.kind);
            for error in param.validator.iter_errors(&typed) {
                problems.push(format!("parameter `{}`: {error}", param.name));
            }
        }
        let mut parsed = Value::Null;
        match &self.body {
            None => {
                if !body.is_empty() {
                    problems.push("this operation takes no request body".into());
                }
            }
            Some(spec) => {
                if body.is_empty() {
                    if spec.required {
                        problems.push("missing required JSON request body".into());
                    }
                } else {
                    let is_json = content_type
                        .map(|c| c.split(';').next().unwrap_or("").trim())
                        .is_some_and(|c| c.eq_ignore_ascii_case("application/json"));
                    if !is_json {
                        problems.push(format!(
                            "request body sent with content-type {:?}, expected application/json",
                            content_type.unwrap_or("(none)")
                        ));
                    }
                    match serde_json::from_slice::<Value>(body) {
                        Err(e) => problems.push(format!("request body is not JSON: {e}")),
                        Ok(value) => {
                            if let Some(validator) = &spec.validator {
                                for error in validator.iter_errors(&value) {
                                    problems.push(describe(&error));
                                }
                            }
                            parsed = value;
                        }
                    }
                }
            }
        }
        if problems.is_empty() {
            Ok(Checked {
                path_params,
                query,
                body: parsed,
            })
        } else {
            Err(problems)
        }
    }

    /// Validates a 2xx response body against the operation's declared response. Other
    /// statuses are the caller's to check against the provider's error schema.
    pub fn check_response(&self, status: u16, body: &[u8]) -> Vec<String> {
        if !(200..300).contains(&status) {
            return Vec::new();
        }
        let code = status.to_string();
        let range = format!("{}XX", status / 100);
        let declared = self.responses.iter().find(|(k, _)| *k == code).or_else(|| {
            self.responses
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(&range))
        });
        let Some((_, validator)) = declared else {
            return vec![format!("status {status} is not a declared response")];
        };
        match validator {
            None => {
                if body.is_empty() {
                    Vec::new()
                } else {
                    vec![format!(
                        "status {status} declares no body, but one was sent"
                    )]
                }
            }
            Some(validator) => match serde_json::from_slice::<Value>(body) {
                Err(e) => vec![format!("response body is not JSON: {e}")],
                Ok(value) => validator
                    .iter_errors(&value)
                    .map(|e| describe(&e))
                    .collect(),
            },
        }
    }
}

/// One validation error as a line: where, and what. For `oneOf`/`anyOf` the closest
/// alternative's errors are given instead of the whole instance; the closest is the one
/// whose `type` discriminator matched and that has the fewest errors, missing fields
/// counting as farther than wrong ones.
fn describe(error: &jsonschema::ValidationError<'_>) -> String {
    use jsonschema::error::ValidationErrorKind as K;
    let path = error.instance_path().as_str().to_string();
    let path = if path.is_empty() { "/".into() } else { path };
    let branches = match error.kind() {
        K::OneOfNotValid { context } | K::AnyOf { context } => Some(context),
        _ => None,
    };
    match branches {
        Some(branches) if !branches.is_empty() => {
            let rank = |errors: &Vec<jsonschema::ValidationError<'static>>| {
                let discriminator_failed = errors
                    .iter()
                    .any(|e| e.instance_path().as_str().ends_with("/type"));
                let missing = errors
                    .iter()
                    .filter(|e| matches!(e.kind(), K::Required { .. }))
                    .count();
                (discriminator_failed, errors.len(), missing)
            };
            let closest = branches.iter().min_by_key(|b| rank(b)).expect("non-empty");
            let details: Vec<String> = closest.iter().map(|e| describe(e)).collect();
            format!(
                "at {path}: matches none of the {} alternatives; the closest fails {}",
                branches.len(),
                details.join("; ")
            )
        }
        _ => format!("at {path}: {error}"),
    }
}

fn compile_operation(
    doc: &Value,
    template: &str,
    method: &str,
    op: &Value,
    shared_params: &[Value],
) -> Operation {
    let id = op["operationId"].as_str().unwrap_or(template).to_string();
    let segments = template
        .trim_end_matches('/')
        .split('/')
        .map(
            |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => Segment::Param(name.to_string()),
                None => Segment::Literal(s.to_string()),
            },
        )
        .collect();
    let mut params: Vec<Param> = Vec::new();
    let own = op["parameters"].as_array().cloned().unwrap_or_default();
    for raw in shared_params.iter().chain(own.iter()) {
        let p = resolve(doc, raw);
        let location = match p["in"].as_str() {
            Some("path") => Location::Path,
            Some("query") => Location::Query,
            _ => continue, // headers and cookies are checked by the fake itself
        };
        let name = p["name"].as_str().expect("parameter name").to_string();
        let schema = convert(doc, &p["schema"], Direction::Request, 0);
        let kind = kind_of(&schema);
        let validator = compile(&schema, &format!("{id} parameter {name}"));
        params.retain(|q| !(q.name == name && q.location == location));
        params.push(Param {
            required: p["required"]
                .as_bool()
                .unwrap_or(location == Location::Path),
            name,
            location,
            kind,
            validator,
        });
    }
    let body = op.get("requestBody").map(|rb| {
        let rb = resolve(doc, rb);
        let json = &rb["content"]["application/json"];
        let validator = json.get("schema").map(|s| {
            compile(
                &convert(doc, s, Direction::Request, 0),
                &format!("{id} body"),
            )
        });
        Body {
            required: rb["required"].as_bool().unwrap_or(false),
            validator,
        }
    });
    let mut responses = Vec::new();
    if let Some(map) = op["responses"].as_object() {
        for (key, response) in map {
            let response = resolve(doc, response);
            let validator = response["content"]["application/json"]
                .get("schema")
                .map(|s| {
                    compile(
                        &convert(doc, s, Direction::Response, 0),
                        &format!("{id} response {key}"),
                    )
                });
            responses.push((key.clone(), validator));
        }
    }
    Operation {
        id,
        method: method.to_ascii_uppercase(),
        template: template.to_string(),
        segments,
        params,
        body,
        responses,
    }
}

fn compile(schema: &Value, what: &str) -> Validator {
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(false)
        .build(schema)
        .unwrap_or_else(|e| panic!("schema for {what} does not compile: {e}"))
}

fn json_ref(pointer: &str) -> Value {
    serde_json::json!({ "$ref": pointer })
}

/// Follows a `$ref` (also chains of them) to the referenced value.
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    let mut current = value;
    for _ in 0..32 {
        match current.get("$ref").and_then(Value::as_str) {
            Some(pointer) => {
                let pointer = pointer.strip_prefix('#').expect("only internal $refs");
                current = doc
                    .pointer(pointer)
                    .unwrap_or_else(|| panic!("dangling $ref {pointer}"));
            }
            None => return current,
        }
    }
    panic!("$ref chain too long")
}

/// OpenAPI 3.0 schema object -> JSON Schema 2020-12, with references inlined.
pub fn convert(doc: &Value, schema: &Value, direction: Direction, depth: usize) -> Value {
    assert!(depth < 64, "schema nesting too deep (recursive $ref?)");
    let schema = resolve(doc, schema);
    let Some(object) = schema.as_object() else {
        return schema.clone();
    };
    let mut out = Map::new();
    let mut hidden: Vec<String> = Vec::new(); // properties dropped from `required`
    let mut forbidden: Vec<String> = Vec::new(); // properties not allowed at all
    for (key, value) in object {
        match key.as_str() {
            "properties" => {
                let mut props = Map::new();
                for (name, prop) in value.as_object().into_iter().flatten() {
                    let target = resolve(doc, prop);
                    let read_only = target["readOnly"].as_bool().unwrap_or(false);
                    let write_only = target["writeOnly"].as_bool().unwrap_or(false);
                    if direction == Direction::Request && read_only {
                        hidden.push(name.clone());
                    }
                    if direction == Direction::Response && write_only {
                        hidden.push(name.clone());
                        forbidden.push(name.clone());
                    }
                    props.insert(name.clone(), convert(doc, prop, direction, depth + 1));
                }
                out.insert(key.clone(), Value::Object(props));
            }
            "items" | "not" => {
                out.insert(key.clone(), convert(doc, value, direction, depth + 1));
            }
            "additionalProperties" => {
                let converted = if value.is_object() {
                    convert(doc, value, direction, depth + 1)
                } else {
                    value.clone()
                };
                out.insert(key.clone(), converted);
            }
            "allOf" | "anyOf" | "oneOf" => {
                let list = value
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|s| convert(doc, s, direction, depth + 1))
                    .collect();
                out.insert(key.clone(), Value::Array(list));
            }
            "exclusiveMinimum" | "exclusiveMaximum" if value.is_boolean() => {}
            "nullable" | "example" | "examples" | "discriminator" | "readOnly" | "writeOnly"
            | "xml" | "externalDocs" | "deprecated" | "description" | "title" => {}
            k if k.starts_with("x-") => {}
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    for (flag, bound) in [
        ("exclusiveMinimum", "minimum"),
        ("exclusiveMaximum", "maximum"),
    ] {
        if object.get(flag).and_then(Value::as_bool) == Some(true) {
            if let Some(limit) = out.remove(bound) {
                out.insert(flag.into(), limit);
            }
        }
    }
    if object.get("nullable").and_then(Value::as_bool) == Some(true) {
        match out.get("type").cloned() {
            Some(Value::String(t)) => {
                out.insert("type".into(), serde_json::json!([t, "null"]));
            }
            Some(Value::Array(mut ts)) if !ts.contains(&Value::from("null")) => {
                ts.push("null".into());
                out.insert("type".into(), Value::Array(ts));
            }
            _ => {}
        }
        if let Some(Value::Array(values)) = out.get_mut("enum") {
            if !values.contains(&Value::Null) {
                values.push(Value::Null);
            }
        }
    }
    if let Some(Value::Array(required)) = out.get_mut("required") {
        required.retain(|r| !r.as_str().is_some_and(|r| hidden.iter().any(|h| h == r)));
    }
    if !forbidden.is_empty() {
        if let Some(Value::Object(props)) = out.get_mut("properties") {
            for name in forbidden {
                props.insert(name, Value::Bool(false));
            }
        }
    }
    Value::Object(out)
}

fn kind_of(schema: &Value) -> Kind {
    let from_type = |t: &str| match t {
        "number" => Some(Kind::Number),
        "integer" => Some(Kind::Integer),
        "boolean" => Some(Kind::Boolean),
        "string" => Some(Kind::String),
        _ => None,
    };
    match &schema["type"] {
        Value::String(t) => {
            if let Some(k) = from_type(t) {
                return k;
            }
        }
        Value::Array(ts) => {
            if let Some(k) = ts.iter().filter_map(Value::as_str).find_map(from_type) {
                return k;
            }
        }
        _ => {}
    }
    for combinator in ["allOf", "anyOf", "oneOf"] {
        if let Some(first) = schema[combinator].as_array().and_then(|a| a.first()) {
            return kind_of(first);
        }
    }
    Kind::String
}

/// A query or path value typed as its schema expects; left a string when it does not parse,
/// so the validator reports the mismatch.
fn coerce(value: &str, kind: Kind) -> Value {
    match kind {
        Kind::String => Value::String(value.into()),
        Kind::Integer => value
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(value.into())),
        Kind::Number => value
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(|n| {
                if n.as_f64()
                    .is_some_and(|f| f.fract() == 0.0 && f.abs() < 1e15)
                {
                    Value::from(n.as_f64().unwrap_or(0.0) as i64)
                } else {
                    Value::Number(n)
                }
            })
            .unwrap_or_else(|| Value::String(value.into())),
        Kind::Boolean => match value {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::String(value.into()),
        },
    }
}

/// Percent-decoding of one path segment or query component (`+` is a space in queries).
pub fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// YAML -> JSON, with non-string mapping keys (e.g. `200:`) turned into strings.
fn yaml_to_json(value: serde_yaml::Value) -> Value {
    use serde_yaml::Value as Y;
    match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
                    .unwrap_or(Value::Null)
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(yaml_to_json).collect()),
        Y::Mapping(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let key = match k {
                    Y::String(s) => s,
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    other => serde_yaml::to_string(&other)
                        .unwrap_or_default()
                        .trim()
                        .to_string(),
                };
                out.insert(key, yaml_to_json(v));
            }
            Value::Object(out)
        }
        Y::Tagged(tagged) => yaml_to_json(tagged.value),
    }
}
