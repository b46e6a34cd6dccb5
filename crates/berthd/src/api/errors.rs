//! The one place where berthd's errors meet Docker's: each subsystem's typed
//! error gets its category (`From<...> for ApiError`), and each category its
//! HTTP status ([`status`], moby's httpstatus.FromError). Nothing below the API
//! imports this module; the conversions apply wherever `?` meets them.

use crate::error::ApiError;
use berth_api::ErrorKind;
use hyper::StatusCode;

/// The HTTP status of an error category.
pub fn status(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::InvalidArgument => StatusCode::BAD_REQUEST,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorKind::NotImplemented => StatusCode::NOT_IMPLEMENTED,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<berth_image::StoreError> for ApiError {
    fn from(e: berth_image::StoreError) -> ApiError {
        ApiError::caused_by(e.kind(), e)
    }
}

impl From<crate::daemon::volume::Error> for ApiError {
    fn from(e: crate::daemon::volume::Error) -> ApiError {
        // Every failing step of the volume service is the daemon's, not the client's.
        ApiError::caused_by(ErrorKind::Internal, e)
    }
}

impl From<crate::daemon::network::Error> for ApiError {
    fn from(e: crate::daemon::network::Error) -> ApiError {
        ApiError::caused_by(ErrorKind::Internal, e)
    }
}

impl From<crate::daemon::container::Error> for ApiError {
    fn from(e: crate::daemon::container::Error) -> ApiError {
        use crate::daemon::container::Error as E;
        let kind = match &e {
            // Docker answers a limit the kernel refuses as the client's mistake.
            E::Update { .. } => ErrorKind::InvalidArgument,
            _ => ErrorKind::Internal,
        };
        ApiError::caused_by(kind, e)
    }
}

impl From<crate::daemon::archive::Error> for ApiError {
    fn from(e: crate::daemon::archive::Error) -> ApiError {
        use crate::daemon::archive::Error as E;
        let kind = match &e {
            E::NotRunning { .. } => ErrorKind::Conflict,
            _ => ErrorKind::Internal,
        };
        ApiError::caused_by(kind, e)
    }
}

impl From<crate::daemon::shim::Error> for ApiError {
    fn from(e: crate::daemon::shim::Error) -> ApiError {
        use crate::daemon::shim::Error as E;
        let kind = match &e {
            E::Running { .. } => ErrorKind::Conflict,
            _ => ErrorKind::Internal,
        };
        ApiError::caused_by(kind, e)
    }
}

impl From<crate::daemon::image::Error> for ApiError {
    fn from(e: crate::daemon::image::Error) -> ApiError {
        ApiError::caused_by(ErrorKind::Internal, e)
    }
}

impl From<crate::daemon::build::contexts::Error> for ApiError {
    fn from(e: crate::daemon::build::contexts::Error) -> ApiError {
        use crate::daemon::build::contexts::Error as E;
        let kind = match &e {
            E::Key(_) | E::Path(_) => ErrorKind::InvalidArgument,
            E::Stale(_) => ErrorKind::Conflict,
            E::Io { .. } => ErrorKind::Internal,
        };
        ApiError::caused_by(kind, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::{container, volume};

    #[test]
    fn typed_errors_keep_their_cause_and_get_dockers_category() {
        let e: ApiError = volume::Error::Mount {
            name: "data".into(),
            data: "/var/lib/berth/volumes/data/_data".into(),
            device: "tmpfs".into(),
            fstype: "tmpfs".into(),
            options: "size=1x".into(),
            source: rustix::io::Errno::INVAL,
        }
        .into();
        assert_eq!(e.kind, ErrorKind::Internal);
        assert_eq!(status(e.kind), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            e.message.starts_with("error while mounting volume '/var/lib/berth/volumes/data/_data': failed to mount local volume: mount tmpfs:data (type tmpfs, options \"size=1x\"): "),
            "{e}"
        );
        let cause = e.cause().expect("the typed error is kept");
        assert!(matches!(
            cause.downcast_ref::<volume::Error>(),
            Some(volume::Error::Mount { name, .. }) if name == "data"
        ));
        // A limit the kernel refuses is the client's mistake in Docker's eyes.
        let e: ApiError = container::Error::Update {
            id: "abc".into(),
            source: berth_runtime::cgroups::CgroupError::NoHierarchy("/sys/fs/cgroup".into()),
        }
        .into();
        assert_eq!(status(e.kind), StatusCode::BAD_REQUEST);
        assert!(
            e.message.starts_with("Cannot update container abc: "),
            "{e}"
        );
        // A refusal made in Docker's words has no typed cause.
        assert!(ApiError::not_found("No such container: x")
            .cause()
            .is_none());
    }
}
