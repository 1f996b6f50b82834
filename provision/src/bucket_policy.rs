//! The bucket policy document (JSON): the one provision writes (anonymous `s3:GetObject`
//! on the bucket's objects, as the seed's Terraform) and a comparison by meaning, since S3
//! servers hand a policy back rewritten (a single statement unwrapped, `"*"` as
//! `{"AWS": ["*"]}`, lists for single values). Pure: JSON in, JSON or a yes/no out.

use serde_json::{json, Map, Value};

/// The seed's bucket policy: anyone may `s3:GetObject` any object of the bucket.
pub fn anonymous_read_policy(bucket: &str) -> Value {
    json!({
        "Id": "DirectReads",
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "AllowDirectReads",
            "Action": ["s3:GetObject"],
            "Effect": "Allow",
            "Resource": [format!("arn:aws:s3:::{bucket}/*")],
            "Principal": "*",
        }],
    })
}

/// Whether two bucket policies mean the same thing, although a server may have rewritten
/// one: statements in any order, a lone statement or a list of one, `"x"` or `["x"]`
/// (in any order) for actions, resources, principals and condition values, `"*"` or
/// `{"AWS": "*"}` for everyone, `true` or `"true"` in conditions. `Version`, `Id`, `Sid` and
/// `Effect` are compared as they are.
pub fn policy_equivalent(a: &Value, b: &Value) -> bool {
    normalize_policy(a) == normalize_policy(b)
}

fn normalize_policy(policy: &Value) -> Value {
    let Value::Object(map) = policy else {
        return policy.clone();
    };
    let mut out = Map::new();
    for (key, value) in map {
        let value = if key == "Statement" {
            let statements = match value {
                Value::Array(items) => items.iter().map(normalize_statement).collect(),
                other => vec![normalize_statement(other)],
            };
            sorted_array(statements)
        } else {
            value.clone()
        };
        out.insert(key.clone(), value);
    }
    Value::Object(out)
}

fn normalize_statement(statement: &Value) -> Value {
    let Value::Object(map) = statement else {
        return statement.clone();
    };
    let mut out = Map::new();
    for (key, value) in map {
        let value = match key.as_str() {
            "Action" | "NotAction" | "Resource" | "NotResource" => string_set(value),
            "Principal" | "NotPrincipal" => normalize_principal(value),
            "Condition" => normalize_condition(value),
            _ => value.clone(),
        };
        out.insert(key.clone(), value);
    }
    Value::Object(out)
}

fn normalize_principal(principal: &Value) -> Value {
    match principal {
        Value::String(s) if s == "*" => json!({ "AWS": ["*"] }),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), string_set(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn normalize_condition(condition: &Value) -> Value {
    let Value::Object(operators) = condition else {
        return condition.clone();
    };
    Value::Object(
        operators
            .iter()
            .map(|(op, keys)| {
                let keys = match keys {
                    Value::Object(keys) => Value::Object(
                        keys.iter()
                            .map(|(k, v)| (k.clone(), string_set(v)))
                            .collect(),
                    ),
                    other => other.clone(),
                };
                (op.clone(), keys)
            })
            .collect(),
    )
}

/// `"x"`, `["x"]`, `true`, `["true"]` all become the sorted list of strings `["x"]` / `["true"]`.
fn string_set(value: &Value) -> Value {
    let scalar = |v: &Value| match v {
        Value::String(s) => Value::String(s.clone()),
        Value::Bool(_) | Value::Number(_) => Value::String(v.to_string()),
        other => other.clone(),
    };
    let items = match value {
        Value::Array(items) => items.iter().map(scalar).collect(),
        other => vec![scalar(other)],
    };
    sorted_array(items)
}

fn sorted_array(mut items: Vec<Value>) -> Value {
    items.sort_by_key(|v| v.to_string());
    items.dedup();
    Value::Array(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_compare_by_meaning() {
        let seed = anonymous_read_policy("nix-store");
        assert_eq!(
            seed["Statement"][0]["Resource"][0],
            "arn:aws:s3:::nix-store/*"
        );
        assert_eq!(seed["Id"], "DirectReads");
        let rewritten = json!({
            "Version": "2012-10-17",
            "Id": "DirectReads",
            "Statement": {
                "Principal": {"AWS": ["*"]},
                "Effect": "Allow",
                "Resource": "arn:aws:s3:::nix-store/*",
                "Action": "s3:GetObject",
                "Sid": "AllowDirectReads"
            }
        });
        assert!(policy_equivalent(&seed, &rewritten));
        assert!(policy_equivalent(&rewritten, &seed));
        assert!(!policy_equivalent(&seed, &anonymous_read_policy("other")));
        let mut more = seed.clone();
        more["Statement"][0]["Action"] = json!(["s3:GetObject", "s3:ListBucket"]);
        assert!(!policy_equivalent(&seed, &more));
        let mut deny = seed.clone();
        deny["Statement"][0]["Effect"] = json!("Deny");
        assert!(!policy_equivalent(&seed, &deny));
        let cond_a = json!({"Statement": [{"Condition": {"Bool": {"aws:SecureTransport": true}}}]});
        let cond_b =
            json!({"Statement": [{"Condition": {"Bool": {"aws:SecureTransport": ["true"]}}}]});
        assert!(policy_equivalent(&cond_a, &cond_b));
    }
}
