//! The awsJson1_1 side: `POST /` with `X-Amz-Target: AmazonPersonalize.<Operation>`.
//!
//! [`handle`] is a function of the state and the request; the server does the I/O (sleeping for
//! latency, closing the connection for a drop).

use serde_json::{Map, Value, json};

use super::EmulatorState;
use super::faults::{FaultKind, FaultRule, LONG_REASON_BYTES};
use super::identity::Caller;
use super::model::{Job, arn_region_and_account, matches_personalize_arn};
use super::token::Cursor;

const TARGET_PREFIX: &str = "AmazonPersonalize.";
const MAX_ARN_LEN: usize = 256;
const MAX_TOKEN_LEN: usize = 1500;

/// The operations the emulator serves; anything else is UnknownOperationException.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    ListBatchInferenceJobs,
    DescribeBatchInferenceJob,
    ListSolutionVersions,
    DescribeSolutionVersion,
}

impl Operation {
    pub const ALL: [Operation; 4] = [
        Operation::ListBatchInferenceJobs,
        Operation::DescribeBatchInferenceJob,
        Operation::ListSolutionVersions,
        Operation::DescribeSolutionVersion,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Operation::ListBatchInferenceJobs => "ListBatchInferenceJobs",
            Operation::DescribeBatchInferenceJob => "DescribeBatchInferenceJob",
            Operation::ListSolutionVersions => "ListSolutionVersions",
            Operation::DescribeSolutionVersion => "DescribeSolutionVersion",
        }
    }

    /// From `X-Amz-Target: AmazonPersonalize.<Operation>`, matched case-insensitively.
    pub fn from_target(target: &str) -> Option<Self> {
        let prefix = target.get(..TARGET_PREFIX.len())?;
        if !prefix.eq_ignore_ascii_case(TARGET_PREFIX) {
            return None;
        }
        let name = &target[TARGET_PREFIX.len()..];
        Self::ALL
            .into_iter()
            .find(|op| op.name().eq_ignore_ascii_case(name))
    }

    /// The input member naming what the request is about: the log shows it and fault rules
    /// filter on it.
    fn subject_member(self) -> &'static str {
        match self {
            Operation::ListBatchInferenceJobs | Operation::DescribeSolutionVersion => {
                "solutionVersionArn"
            }
            Operation::DescribeBatchInferenceJob => "batchInferenceJobArn",
            Operation::ListSolutionVersions => "solutionArn",
        }
    }
}

/// What the server should do with a request.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    Respond {
        status: u16,
        /// `x-amzn-ErrorType`, the same code as `__type` in the body.
        error_type: Option<&'static str>,
        body: String,
        /// Wait this long before answering.
        delay_ms: u64,
    },
    /// Close the connection without answering.
    Drop,
}

/// A request as the log and the fault filters see it.
#[derive(Debug, Default, Clone)]
pub struct RequestFacts {
    pub operation: Option<String>,
    pub solution_version_arn: Option<String>,
    pub had_token: bool,
    pub fault: Option<FaultKind>,
    pub account: String,
    pub region: String,
}

#[derive(Debug)]
struct ApiError {
    status: u16,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(400, "InvalidInputException", message)
    }
    fn serialization(message: impl Into<String>) -> Self {
        Self::new(400, "SerializationException", message)
    }
    fn into_outcome(self) -> Outcome {
        error_outcome(self.status, self.code, &self.message)
    }
}

pub(crate) fn error_outcome(status: u16, code: &'static str, message: &str) -> Outcome {
    Outcome::Respond {
        status,
        error_type: Some(code),
        body: json!({ "__type": code, "message": message }).to_string(),
        delay_ms: 0,
    }
}

fn ok(body: Value) -> Outcome {
    Outcome::Respond {
        status: 200,
        error_type: None,
        body: body.to_string(),
        delay_ms: 0,
    }
}

/// The AWS wording for a failed constraint.
fn constraint(value: &str, member: &str, rule: &str) -> ApiError {
    ApiError::invalid_input(format!(
        "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: {rule}"
    ))
}

fn missing(member: &str) -> ApiError {
    ApiError::invalid_input(format!(
        "1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"
    ))
}

fn opt_string(input: &Map<String, Value>, member: &str) -> Result<Option<String>, ApiError> {
    match input.get(member) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(ApiError::serialization(format!(
            "Unexpected value type for member '{member}': expected a string, got {other}"
        ))),
    }
}

fn arn_member(input: &Map<String, Value>, member: &str) -> Result<Option<String>, ApiError> {
    let Some(arn) = opt_string(input, member)? else {
        return Ok(None);
    };
    if arn.chars().count() > MAX_ARN_LEN {
        return Err(constraint(
            &arn,
            member,
            "Member must have length less than or equal to 256",
        ));
    }
    if !matches_personalize_arn(&arn) {
        return Err(constraint(
            &arn,
            member,
            "Member must satisfy regular expression pattern: arn:([a-z\\d-]+):personalize:.*:.*:.+",
        ));
    }
    Ok(Some(arn))
}

fn max_results(input: &Map<String, Value>) -> Result<usize, ApiError> {
    match input.get("maxResults") {
        None | Some(Value::Null) => Ok(100),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(v @ 1..=100) => Ok(v as usize),
            Some(v) if v < 1 => Err(constraint(
                &v.to_string(),
                "maxResults",
                "Member must have value greater than or equal to 1",
            )),
            Some(v) => Err(constraint(
                &v.to_string(),
                "maxResults",
                "Member must have value less than or equal to 100",
            )),
            None => Err(ApiError::serialization(format!(
                "Unexpected value for member 'maxResults': {n} is not an integer"
            ))),
        },
        Some(other) => Err(ApiError::serialization(format!(
            "Unexpected value type for member 'maxResults': expected an integer, got {other}"
        ))),
    }
}

/// `nextToken`, with `""` taken as absent (a leniency: clients may send it when a user sets it).
fn next_token(input: &Map<String, Value>) -> Result<Option<String>, ApiError> {
    let token = opt_string(input, "nextToken")?.filter(|t| !t.is_empty());
    if let Some(t) = &token
        && (t.len() > MAX_TOKEN_LEN || !t.is_ascii())
    {
        return Err(constraint(
            "***",
            "nextToken",
            "Member must have length less than or equal to 1500 and match \\p{ASCII}{0,1500}",
        ));
    }
    Ok(token)
}

/// Whether the Authorization header is a SigV4 header. The signature itself is not checked.
pub fn check_authorization(header: Option<&str>) -> Result<(), (&'static str, &'static str)> {
    let Some(value) = header else {
        return Err((
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        ));
    };
    let well_formed = value.starts_with("AWS4-HMAC-SHA256 ")
        && ["Credential=", "SignedHeaders=", "Signature="]
            .iter()
            .all(|part| value.contains(part));
    if well_formed {
        Ok(())
    } else {
        Err((
            "IncompleteSignatureException",
            "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters in AWS4-HMAC-SHA256 form",
        ))
    }
}

/// A Personalize request: its target, its caller (None when it is not signed), its body.
pub struct Request<'a> {
    pub target: Option<&'a str>,
    pub authorization: Option<&'a str>,
    pub caller: Option<&'a Caller>,
    pub body: &'a [u8],
}

/// Handles one API request. `facts` is filled in for the request log as far as it gets.
pub fn handle(
    state: &mut EmulatorState,
    request: &Request<'_>,
    facts: &mut RequestFacts,
) -> Outcome {
    let target = request.target;
    let operation = target.and_then(Operation::from_target);
    facts.operation = Some(match operation {
        Some(op) => op.name().to_string(),
        None => target.unwrap_or_default().to_string(),
    });
    if let Err((code, message)) = check_authorization(request.authorization) {
        return error_outcome(400, code, message);
    }
    let Some(caller) = request.caller else {
        return error_outcome(400, "IncompleteSignatureException", "No credential scope");
    };
    facts.account = caller.principal.account.clone();
    facts.region = caller.region.clone();
    let Some(operation) = operation else {
        let named = target.unwrap_or("(no X-Amz-Target)");
        return error_outcome(
            400,
            "UnknownOperationException",
            &format!("Unknown operation {named}"),
        );
    };
    let input = match parse_body(request.body) {
        Ok(input) => input,
        Err(e) => return e.into_outcome(),
    };
    // Faults are matched on the raw request, before validation, so they hit what they name.
    let subject = input
        .get(operation.subject_member())
        .and_then(Value::as_str)
        .map(str::to_string);
    facts.had_token = input
        .get("nextToken")
        .and_then(Value::as_str)
        .is_some_and(|t| !t.is_empty());
    let fault = state
        .faults
        .take(operation.name(), subject.as_deref(), facts.had_token);
    facts.solution_version_arn = subject;
    facts.fault = fault.as_ref().map(|f| f.kind);
    if let Some(replaced) = fault
        .as_ref()
        .and_then(|f| f.kind.replacement(operation, &caller.principal))
    {
        return replaced;
    }
    let outcome = match answer(state, caller, operation, &input, fault.as_ref()) {
        Ok(body) => ok(body),
        Err(e) => e.into_outcome(),
    };
    match fault {
        Some(rule) => rule.delayed(outcome),
        None => outcome,
    }
}

/// The service's own answer to a well-formed request.
fn answer(
    state: &mut EmulatorState,
    caller: &Caller,
    operation: Operation,
    input: &Map<String, Value>,
    fault: Option<&FaultRule>,
) -> Result<Value, ApiError> {
    match operation {
        Operation::ListBatchInferenceJobs => list_batch_inference_jobs(state, caller, input, fault),
        Operation::DescribeBatchInferenceJob => describe_batch_inference_job(state, caller, input),
        Operation::ListSolutionVersions => list_solution_versions(state, caller, input),
        Operation::DescribeSolutionVersion => describe_solution_version(state, input),
    }
}

fn parse_body(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::serialization(
            "Request body must be a JSON object",
        )),
        Err(e) => Err(ApiError::serialization(format!(
            "Request body is not valid JSON: {e}"
        ))),
    }
}

/// Whether `caller` may see what `arn` names: only its own account's resources. The service
/// says AccessDenied, naming the caller (the operator redacts that from what it shows).
fn authorize(caller: &Caller, operation: Operation, arn: &str) -> Result<(), ApiError> {
    let account = arn_region_and_account(arn).map(|(_, a)| a);
    if account == Some(caller.principal.account.as_str()) {
        return Ok(());
    }
    Err(ApiError::new(
        400,
        "AccessDeniedException",
        format!(
            "User: {} is not authorized to perform: personalize:{} on resource: {arn}",
            caller.principal.arn,
            operation.name()
        ),
    ))
}

/// Whether a job shows in the caller's listing without a solution version: its account and
/// the region the request was signed for.
fn in_scope(caller: &Caller, job: &Job) -> bool {
    job.batch_inference_job_arn
        .as_deref()
        .and_then(arn_region_and_account)
        .is_some_and(|(region, account)| {
            account == caller.principal.account && region == caller.region
        })
}

fn list_batch_inference_jobs(
    state: &mut EmulatorState,
    caller: &Caller,
    input: &Map<String, Value>,
    fault: Option<&FaultRule>,
) -> Result<Value, ApiError> {
    const OP: &str = Operation::ListBatchInferenceJobs.name();
    let sv = arn_member(input, "solutionVersionArn")?;
    if let Some(sv) = &sv {
        authorize(caller, Operation::ListBatchInferenceJobs, sv)?;
        // Resources live in their ARN's region: another region's endpoint has none of them.
        if arn_region_and_account(sv).is_some_and(|(region, _)| region != caller.region) {
            return Ok(json!({ "batchInferenceJobs": [] }));
        }
    }
    let limit = max_results(input)?;
    let token = next_token(input)?;
    let mut cursor = match &token {
        None => Cursor::default(),
        Some(t) => state
            .tokens
            .decode(t, OP, sv.as_deref())
            .ok_or_else(|| ApiError::new(400, "InvalidNextTokenException", "Invalid next token"))?,
    };
    match fault {
        Some(f) if f.kind == FaultKind::EmptyPage => {
            return Ok(json!({
                "batchInferenceJobs": [],
                "nextToken": state.tokens.encode(OP, sv.as_deref(), cursor),
            }));
        }
        Some(f) if f.kind == FaultKind::Omit => {
            let hidden = state
                .store
                .most_recently_updated(sv.as_deref(), f.jobs.unwrap_or(1));
            cursor.listing = state.start_omitting(hidden);
        }
        _ => {}
    }
    let omitted = state.omitted(cursor.listing);
    let whole_account = sv.is_none();
    let visible = |job: &Job| {
        let arn = job.batch_inference_job_arn.as_deref().unwrap_or_default();
        !omitted.contains(arn) && (!whole_account || in_scope(caller, job))
    };
    let page = state
        .store
        .list_jobs(sv.as_deref(), state.order, cursor.start, limit, &visible);
    let mut items: Vec<Value> = page.items.iter().map(|j| j.summary()).collect();
    if fault.is_some_and(|f| f.kind == FaultKind::LongReasons) {
        let reason = long_reason();
        for item in &mut items {
            item["failureReason"] = Value::String(reason.clone());
        }
    }
    let mut out = json!({ "batchInferenceJobs": items });
    if fault.is_some_and(|f| f.kind == FaultKind::RepeatToken) {
        out["nextToken"] = json!(token);
    } else if let Some(start) = page.next_start {
        let next = Cursor { start, ..cursor };
        out["nextToken"] = Value::String(state.tokens.encode(OP, sv.as_deref(), next));
    }
    Ok(out)
}

/// A failure reason of [`LONG_REASON_BYTES`], worded like one.
fn long_reason() -> String {
    let head = "Input data in s3://bucket/input.json could not be read: ";
    let mut reason = String::with_capacity(LONG_REASON_BYTES);
    reason.push_str(head);
    reason.extend(std::iter::repeat_n('x', LONG_REASON_BYTES - head.len()));
    reason
}

fn describe_batch_inference_job(
    state: &EmulatorState,
    caller: &Caller,
    input: &Map<String, Value>,
) -> Result<Value, ApiError> {
    let arn = arn_member(input, "batchInferenceJobArn")?
        .ok_or_else(|| missing("batchInferenceJobArn"))?;
    authorize(caller, Operation::DescribeBatchInferenceJob, &arn)?;
    let job = state.store.job(&arn).ok_or_else(|| {
        ApiError::new(
            400,
            "ResourceNotFoundException",
            format!("Could not find BatchInferenceJob with arn {arn}"),
        )
    })?;
    Ok(json!({ "batchInferenceJob": job.described() }))
}

fn list_solution_versions(
    state: &EmulatorState,
    caller: &Caller,
    input: &Map<String, Value>,
) -> Result<Value, ApiError> {
    const OP: &str = Operation::ListSolutionVersions.name();
    let solution = arn_member(input, "solutionArn")?;
    if let Some(solution) = &solution {
        authorize(caller, Operation::ListSolutionVersions, solution)?;
        // Resources live in their ARN's region: another region's endpoint has none of them.
        if arn_region_and_account(solution).is_some_and(|(region, _)| region != caller.region) {
            return Ok(json!({ "solutionVersions": [] }));
        }
    }
    let limit = max_results(input)?;
    let start = match next_token(input)? {
        None => 0,
        Some(t) => {
            state
                .tokens
                .decode(&t, OP, solution.as_deref())
                .ok_or_else(|| {
                    ApiError::new(400, "InvalidNextTokenException", "Invalid next token")
                })?
                .start
        }
    };
    let page = state
        .store
        .list_solution_versions(solution.as_deref(), start, limit);
    let items: Vec<Value> = page.items.iter().map(|sv| sv.summary()).collect();
    let mut out = json!({ "solutionVersions": items });
    if let Some(next) = page.next_start {
        let next = Cursor {
            start: next,
            listing: 0,
        };
        out["nextToken"] = Value::String(state.tokens.encode(OP, solution.as_deref(), next));
    }
    Ok(out)
}

fn describe_solution_version(
    state: &EmulatorState,
    input: &Map<String, Value>,
) -> Result<Value, ApiError> {
    let arn =
        arn_member(input, "solutionVersionArn")?.ok_or_else(|| missing("solutionVersionArn"))?;
    let sv = state.store.solution_version(&arn).ok_or_else(|| {
        ApiError::new(
            400,
            "ResourceNotFoundException",
            format!("Could not find SolutionVersion with arn {arn}"),
        )
    })?;
    Ok(json!({ "solutionVersion": sv }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUTH: &str = "AWS4-HMAC-SHA256 Credential=AKID/20261129/us-east-1/personalize/aws4_request, SignedHeaders=host, Signature=abc";
    const SV: &str = "arn:aws:personalize:us-east-1:123456789012:solution/sol/v1";

    fn caller() -> Caller {
        Caller {
            principal: state_principal(),
            region: "us-east-1".into(),
        }
    }

    fn state_principal() -> crate::identity::Principal {
        crate::identity::Identities::default().principal("AKID")
    }

    fn call(state: &mut EmulatorState, op: &str, body: Value) -> (u16, Value) {
        let mut facts = RequestFacts::default();
        let target = format!("AmazonPersonalize.{op}");
        let body = body.to_string();
        let caller = Caller {
            principal: state.identities.principal("AKID"),
            ..caller()
        };
        let request = Request {
            target: Some(&target),
            authorization: Some(AUTH),
            caller: Some(&caller),
            body: body.as_bytes(),
        };
        match handle(state, &request, &mut facts) {
            Outcome::Respond { status, body, .. } => {
                (status, serde_json::from_str(&body).unwrap_or(Value::Null))
            }
            Outcome::Drop => (0, Value::Null),
        }
    }

    #[test]
    fn errors_carry_type_and_message() {
        let mut state = EmulatorState::default();
        let (status, body) = call(
            &mut state,
            "ListBatchInferenceJobs",
            json!({"maxResults": 101}),
        );
        assert_eq!(status, 400);
        assert_eq!(body["__type"], "InvalidInputException");
        assert!(body["message"].as_str().unwrap().contains("maxResults"));
        let (status, body) = call(
            &mut state,
            "ListBatchInferenceJobs",
            json!({"solutionVersionArn": "nope"}),
        );
        assert_eq!(
            (status, body["__type"].as_str()),
            (400, Some("InvalidInputException"))
        );
        let (_, body) = call(
            &mut state,
            "ListBatchInferenceJobs",
            json!({"nextToken": "garbage"}),
        );
        assert_eq!(body["__type"], "InvalidNextTokenException");
        let (_, body) = call(&mut state, "DescribeBatchInferenceJob", json!({}));
        assert_eq!(body["__type"], "InvalidInputException");
        let (_, body) = call(
            &mut state,
            "DescribeSolutionVersion",
            json!({"solutionVersionArn": SV}),
        );
        assert_eq!(body["__type"], "ResourceNotFoundException");
        let (_, body) = call(&mut state, "CreateSolution", json!({}));
        assert_eq!(body["__type"], "UnknownOperationException");
    }

    #[test]
    fn missing_authorization_is_refused() {
        let mut state = EmulatorState::default();
        let mut facts = RequestFacts::default();
        let request = Request {
            target: Some("AmazonPersonalize.ListBatchInferenceJobs"),
            authorization: None,
            caller: None,
            body: b"{}",
        };
        let outcome = handle(&mut state, &request, &mut facts);
        let Outcome::Respond {
            status,
            body,
            error_type,
            ..
        } = outcome
        else {
            panic!("dropped")
        };
        assert_eq!(status, 400);
        assert_eq!(error_type, Some("MissingAuthenticationTokenException"));
        assert!(body.contains("\"__type\":\"MissingAuthenticationTokenException\""));
    }

    #[test]
    fn pages_chain_through_tokens() {
        let mut state = EmulatorState::default();
        state.store.generate(SV, 250, "ACTIVE", "job").unwrap();
        let (_, first) = call(
            &mut state,
            "ListBatchInferenceJobs",
            json!({"solutionVersionArn": SV}),
        );
        assert_eq!(first["batchInferenceJobs"].as_array().unwrap().len(), 100);
        let token = first["nextToken"].as_str().unwrap().to_string();
        let (_, second) = call(
            &mut state,
            "ListBatchInferenceJobs",
            json!({"solutionVersionArn": SV, "nextToken": token}),
        );
        let token2 = second["nextToken"].as_str().unwrap().to_string();
        assert_ne!(token, token2);
        let (_, third) = call(
            &mut state,
            "ListBatchInferenceJobs",
            json!({"solutionVersionArn": SV, "nextToken": token2}),
        );
        assert_eq!(third["batchInferenceJobs"].as_array().unwrap().len(), 50);
        assert!(third.get("nextToken").is_none());
        // A token is bound to its query.
        let (_, foreign) = call(
            &mut state,
            "ListBatchInferenceJobs",
            json!({"nextToken": token}),
        );
        assert_eq!(foreign["__type"], "InvalidNextTokenException");
    }
}
