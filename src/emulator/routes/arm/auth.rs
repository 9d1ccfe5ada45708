//! Bearer-token verification for ARM requests, with ARM's 401 codes and texts.

use http::StatusCode;

use super::ErrorResponse;
use crate::emulator::http::Request;
use crate::emulator::state::AppState;
use crate::emulator::token::{Claims, TokenError};

/// Verifies the bearer token, mapping failures to ARM's 401 codes.
pub(crate) fn authenticate(state: &AppState, req: &Request) -> Result<Claims, ErrorResponse> {
    let challenge = |description: &str| {
        format!(
            "Bearer authorization_uri=\"{}/{}\", error=\"invalid_token\", error_description=\"{description}\"",
            req.base_url, state.identity.tenant_id
        )
    };
    let fail = |code: &str, message: String, description: &str| {
        let mut e = ErrorResponse::new(StatusCode::UNAUTHORIZED, code, message);
        e.extra_mut().www_authenticate = Some(challenge(description));
        e
    };
    let Some(header) = req.header("authorization") else {
        return Err(fail(
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing.".to_string(),
            "The authentication failed because of missing 'Authorization' header.",
        ));
    };
    let token = match header.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            token.trim()
        }
        _ => return Err(fail(
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is provided in an invalid format."
                .to_string(),
            "The authentication failed because of an invalid 'Authorization' header.",
        )),
    };
    state.signer.verify_arm(token).map_err(|e| match e {
        TokenError::Expired { exp, now } => {
            // ARM repeats the message as the challenge's error_description.
            let message = format!(
                "The access token expiry UTC time '{}' is earlier than current UTC time '{}'.",
                format_dotnet_utc(exp),
                format_dotnet_utc(now)
            );
            fail("ExpiredAuthenticationToken", message.clone(), &message)
        }
        TokenError::WrongAudience { aud } => fail(
            "InvalidAuthenticationTokenAudience",
            format!(
                "The access token has been obtained for wrong audience or resource '{aud}'. It should exactly match with one of the allowed audiences 'https://management.core.windows.net/','https://management.core.windows.net','https://management.azure.com/','https://management.azure.com'."
            ),
            "The access token has an invalid audience.",
        ),
        TokenError::Malformed | TokenError::BadSignature | TokenError::NotYetValid => fail(
            "InvalidAuthenticationToken",
            "The access token is invalid.".to_string(),
            "The access token is invalid.",
        ),
    })
}

/// Epoch seconds in .NET's invariant general format (`11/28/2026 9:05:03 PM`), which is how
/// ARM writes times into its authentication errors.
fn format_dotnet_utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (hour, minute, second) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (hour12, meridiem) = match hour {
        0 => (12, "AM"),
        1..=11 => (hour, "AM"),
        12 => (12, "PM"),
        _ => (hour - 12, "PM"),
    };
    format!("{month}/{day}/{year} {hour12}:{minute:02}:{second:02} {meridiem}")
}

#[cfg(test)]
mod tests {
    use super::format_dotnet_utc;

    #[test]
    fn dotnet_times_as_arm_prints_them() {
        let cases = [
            (0, "1/1/1970 12:00:00 AM"),
            // 2020-08-24T11:21:39Z
            (1_598_268_099, "8/24/2020 11:21:39 AM"),
            // 2024-02-29T13:05:09Z (leap day, afternoon)
            (1_709_211_909, "2/29/2024 1:05:09 PM"),
            // 2026-12-31T12:00:00Z
            (1_798_718_400, "12/31/2026 12:00:00 PM"),
        ];
        for (secs, printed) in cases {
            assert_eq!(format_dotnet_utc(secs), printed, "{secs}");
        }
    }
}
