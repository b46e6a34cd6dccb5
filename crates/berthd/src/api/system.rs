use crate::api::http::Call;
use crate::api::http::{self, Resp};
use crate::daemon::events::EventFilter;
use crate::daemon::services::Daemon;
use crate::daemon::time::parse_unix_nanos;
use crate::error::{ApiError, ApiResult};
use bytes::Bytes;
use hyper::{Method, StatusCode};
use std::sync::Arc;
use tokio::sync::mpsc;

pub(super) async fn route(
    d: &Arc<Daemon>,
    call: &mut Call,
    segs: &[&str],
) -> ApiResult<Option<Resp>> {
    Ok(Some(match (&call.method, segs) {
        (&Method::GET | &Method::HEAD, ["_ping"]) => {
            let mut r = if call.method == Method::HEAD {
                http::empty(StatusCode::OK)
            } else {
                http::text(StatusCode::OK, "OK")
            };
            let h = r.headers_mut();
            h.insert(
                "Cache-Control",
                "no-cache, no-store, must-revalidate"
                    .parse()
                    .expect("valid"),
            );
            h.insert("Pragma", "no-cache".parse().expect("valid"));
            r
        }
        (&Method::GET, ["version"]) => http::json(StatusCode::OK, &d.system.version()),
        (&Method::GET, ["info"]) => http::json(StatusCode::OK, &d.system.info()),
        (&Method::GET, ["events"]) => events(d, call)?,
        (&Method::POST, ["auth"]) => {
            let body: serde_json::Value = call.json().await?;
            let s = |k: &str| {
                body.get(k)
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_string()
            };
            let creds = berth_registry::auth::Credentials {
                username: s("username"),
                password: s("password"),
                identity_token: s("identitytoken"),
            };
            if creds.is_empty() {
                return Err(ApiError::invalid("username and password are required"));
            }
            d.images.login(&s("serveraddress"), creds).await?;
            http::json(
                StatusCode::OK,
                &serde_json::json!({ "Status": "Login Succeeded", "IdentityToken": "" }),
            )
        }
        (&Method::GET, ["system", "df"]) => {
            let types: Vec<String> = call
                .query
                .get_all("type")
                .into_iter()
                .map(String::from)
                .collect();
            http::json(StatusCode::OK, &d.system.disk_usage(&types)?)
        }
        _ => return Ok(None),
    }))
}

/// `GET /events`: the history from `since`, then live events until `until`.
fn events(d: &Arc<Daemon>, call: &Call) -> ApiResult<Resp> {
    let q = &call.query;
    let time = |k: &str| -> ApiResult<Option<i128>> {
        match q.get(k).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => parse_unix_nanos(v)
                .map(Some)
                .ok_or_else(|| ApiError::invalid(format!("invalid value for {k}: {v:?}"))),
        }
    };
    let (since, until) = (time("since")?, time("until")?);
    let filter = EventFilter::new(q.filters()?)?;
    let (past, mut live) = d.events.subscribe();
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let line = |e: &crate::daemon::events::Event| {
            let mut b = serde_json::to_vec(&e.to_json()).expect("events serialise");
            b.push(b'\n');
            Bytes::from(b)
        };
        let in_range = |t: i128| until.is_none_or(|u| t <= u);
        let mut last = 0;
        if let Some(s) = since {
            for e in past
                .iter()
                .filter(|e| e.time_nano >= s && in_range(e.time_nano) && filter.matches(e))
            {
                last = e.time_nano;
                if tx.send(line(e)).await.is_err() {
                    return;
                }
            }
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        let deadline = until.map(|u| std::time::Duration::from_nanos((u - now).max(0) as u64));
        let end = async {
            match deadline {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(end);
        loop {
            tokio::select! {
                _ = &mut end => return,
                _ = tx.closed() => return,
                e = live.recv() => match e {
                    Ok(e) if e.time_nano > last && in_range(e.time_nano) && filter.matches(&e) => {
                        if tx.send(line(&e)).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => return,
                }
            }
        }
    });
    Ok(http::stream(StatusCode::OK, "application/json", rx))
}
