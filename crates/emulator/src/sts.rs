//! The STS side, on the same port: `GetCallerIdentity` and `AssumeRole` in the awsQuery protocol
//! (a form body with `Action=...`, an XML answer), as `AWS_ENDPOINT_URL_STS` points the SDKs here.

use super::EmulatorState;
use super::api::Outcome;
use super::identity::Principal;

const NS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// What an STS request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    GetCallerIdentity,
    AssumeRole,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::GetCallerIdentity => "GetCallerIdentity",
            Action::AssumeRole => "AssumeRole",
        }
    }
}

/// Handles one STS request from `caller`; `subject` is filled in for the request log.
pub fn handle(
    state: &mut EmulatorState,
    caller: &Principal,
    body: &[u8],
    subject: &mut Option<String>,
) -> (Option<Action>, Outcome) {
    let form: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    match field("Action") {
        Some("GetCallerIdentity") => (Some(Action::GetCallerIdentity), caller_identity(caller)),
        Some("AssumeRole") => {
            *subject = field("RoleArn").map(str::to_string);
            let outcome = assume_role(
                state,
                caller,
                field("RoleArn").unwrap_or_default(),
                field("RoleSessionName").unwrap_or("session"),
                field("ExternalId"),
            );
            (Some(Action::AssumeRole), outcome)
        }
        other => (
            None,
            error(
                400,
                "InvalidAction",
                &format!(
                    "Could not find operation {}",
                    other.unwrap_or("(no Action)")
                ),
            ),
        ),
    }
}

fn caller_identity(caller: &Principal) -> Outcome {
    xml_ok(format!(
        "<GetCallerIdentityResponse xmlns=\"{NS}\"><GetCallerIdentityResult><Arn>{}</Arn><UserId>AIDAEMULATED</UserId><Account>{}</Account></GetCallerIdentityResult>{}</GetCallerIdentityResponse>",
        escape(&caller.arn),
        escape(&caller.account),
        metadata()
    ))
}

fn assume_role(
    state: &mut EmulatorState,
    caller: &Principal,
    role_arn: &str,
    session: &str,
    external_id: Option<&str>,
) -> Outcome {
    match state
        .identities
        .assume_role(caller, role_arn, session, external_id)
    {
        Ok(creds) => {
            let expiration = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1);
            xml_ok(format!(
                "<AssumeRoleResponse xmlns=\"{NS}\"><AssumeRoleResult><AssumedRoleUser><AssumedRoleId>AROAEMULATED:{}</AssumedRoleId><Arn>{}</Arn></AssumedRoleUser><Credentials><AccessKeyId>{}</AccessKeyId><SecretAccessKey>{}</SecretAccessKey><SessionToken>{}</SessionToken><Expiration>{}</Expiration></Credentials></AssumeRoleResult>{}</AssumeRoleResponse>",
                escape(session),
                escape(&creds.principal.arn),
                creds.access_key_id,
                creds.secret_access_key,
                creds.session_token,
                expiration.strftime("%Y-%m-%dT%H:%M:%SZ"),
                metadata()
            ))
        }
        Err(message) => error(403, "AccessDenied", &message),
    }
}

fn metadata() -> String {
    format!(
        "<ResponseMetadata><RequestId>{:032x}</RequestId></ResponseMetadata>",
        rand::random::<u128>()
    )
}

fn xml_ok(body: String) -> Outcome {
    Outcome::Respond {
        status: 200,
        error_type: None,
        body,
        delay_ms: 0,
    }
}

fn error(status: u16, code: &'static str, message: &str) -> Outcome {
    Outcome::Respond {
        status,
        error_type: Some(code),
        body: format!(
            "<ErrorResponse xmlns=\"{NS}\"><Error><Type>Sender</Type><Code>{code}</Code><Message>{}</Message></Error><RequestId>{:032x}</RequestId></ErrorResponse>",
            escape(message),
            rand::random::<u128>()
        ),
        delay_ms: 0,
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}
