//! The image service: what the image endpoints do, on the store and the registry
//! client, with the events Docker emits. Which containers use an image comes from
//! [`ImageUsers`].

use super::pull::{PullPlan, Puller};
use crate::daemon::events::Events;
use crate::daemon::stream::ChannelWriter;
use crate::daemon::users::Users;
use crate::error::{chain, ApiError, ApiResult};
use berth_api::{ContainerConfig, ImageDeleteItem, ImageInspect, ImageSummary};
use berth_image::{Loaded, Store};
use berth_registry::auth::Credentials;
use bytes::Bytes;
use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Weak};
use tokio::sync::mpsc;

/// What the image service asks of whoever runs containers from images.
pub trait ImageUsers: Send + Sync {
    /// How many containers (any state) use each image, by image ID.
    fn image_users(&self) -> HashMap<String, i64>;
    /// Whether container `id` is running.
    fn is_running(&self, id: &str) -> bool;
}

pub struct Images {
    store: Arc<Store>,
    puller: Arc<Puller>,
    events: Arc<Events>,
    users: Users<dyn ImageUsers>,
}

/// Where `docker import` takes its image from, and what it makes of it.
pub struct ImportRequest {
    pub config: ContainerConfig,
    /// `repo[:tag]` to name the image by, if any.
    pub tag: Option<String>,
    pub message: String,
}

impl Images {
    pub fn new(store: Arc<Store>, puller: Arc<Puller>, events: Arc<Events>) -> Images {
        Images {
            store,
            puller,
            events,
            users: Users::default(),
        }
    }

    /// Wires the container service in (once, at start).
    pub fn set_users(&self, users: Weak<dyn ImageUsers>) {
        self.users.set(users);
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    fn usage(&self) -> HashMap<String, i64> {
        self.users.with(HashMap::new(), |u| u.image_users())
    }

    fn running_check(&self) -> impl Fn(&str) -> bool + '_ {
        move |id: &str| self.users.with(false, |u| u.is_running(id))
    }

    /// An image event: Actor.ID is the image's ID when it still resolves, and
    /// `name` the reference the user gave.
    pub(crate) fn emit(&self, action: &str, name: &str) {
        let id = self
            .store
            .resolve(name)
            .map(|i| i.id)
            .unwrap_or_else(|_| name.to_string());
        let mut attrs = crate::daemon::events::Attributes::new();
        attrs.insert("name".into(), name.into());
        self.events.emit("image", action, &id, attrs);
    }

    /// `GET /images/json`.
    pub fn list(
        &self,
        all: bool,
        filters: &HashMap<String, Vec<String>>,
    ) -> ApiResult<Vec<ImageSummary>> {
        super::query::list(&self.store, &self.usage(), all, filters)
    }

    /// `GET /images/{name}/json`.
    pub fn inspect(&self, name: &str) -> ApiResult<ImageInspect> {
        super::query::inspect(&self.store, name)
    }

    /// `GET /images/{name}/history`.
    pub fn history(&self, name: &str) -> ApiResult<Vec<berth_api::HistoryResponseItem>> {
        super::query::history(&self.store, name)
    }

    /// `POST /images/prune`.
    pub fn prune(
        &self,
        filters: &HashMap<String, Vec<String>>,
    ) -> ApiResult<berth_api::ImagePruneResponse> {
        super::query::prune(&self.store, &self.usage(), &self.running_check(), filters)
    }

    /// `POST /images/load`: the lines Docker prints, one event per image loaded.
    pub async fn load<R: Read + Send + 'static>(&self, reader: R) -> ApiResult<Vec<String>> {
        let s = self.store.clone();
        let loaded = tokio::task::spawn_blocking(move || s.load(reader))
            .await
            .map_err(|source| super::Error::Task {
                what: "load",
                source,
            })??;
        let mut lines = Vec::new();
        for l in &loaded {
            if let Loaded::Image { id, tags } = l {
                if tags.is_empty() {
                    self.emit("load", id);
                }
                for t in tags {
                    self.emit("load", t);
                }
            }
            lines.extend(l.lines());
        }
        Ok(lines)
    }

    /// `POST /images/create?fromSrc=-`: the new image's ID.
    pub async fn import<R: Read + Send + 'static>(
        &self,
        reader: R,
        req: ImportRequest,
    ) -> ApiResult<String> {
        let s = self.store.clone();
        let id = tokio::task::spawn_blocking(move || {
            s.import(
                reader,
                req.config,
                req.tag.as_deref(),
                &req.message,
                &crate::daemon::time::now_rfc3339(),
            )
        })
        .await
        .map_err(|source| super::Error::Task {
            what: "import",
            source,
        })??;
        self.emit("import", &id);
        Ok(id)
    }

    /// `POST /images/{name}/tag`.
    pub fn tag(&self, source: &str, target: &str) -> ApiResult<()> {
        self.store.tag(source, target)?;
        let familiar = berth_image::Reference::parse(target)
            .ok()
            .and_then(|r| r.tagged())
            .unwrap_or_else(|| target.to_string());
        self.emit("tag", &familiar);
        Ok(())
    }

    /// `DELETE /images/{name}`.
    pub fn remove(&self, name: &str, force: bool) -> ApiResult<Vec<ImageDeleteItem>> {
        let items = self.store.remove(name, force, &self.running_check())?;
        for u in items.iter().filter_map(|i| i.untagged.as_ref()) {
            self.emit("untag", u);
        }
        // The first deletion is the image; the rest are its layers.
        if let Some(del) = items.iter().find_map(|i| i.deleted.as_ref()) {
            self.emit("delete", del);
        }
        Ok(items)
    }

    /// `GET /images/get`: a tar of `names` on the returned channel. Every name is
    /// resolved first, so that a missing image is an error and not a broken tar.
    pub fn save(&self, names: Vec<String>) -> ApiResult<mpsc::Receiver<Bytes>> {
        if names.is_empty() {
            return Err(ApiError::invalid("no image names given"));
        }
        for n in &names {
            self.store.resolve(n)?;
        }
        for n in &names {
            self.emit("save", n);
        }
        let (tx, rx) = mpsc::channel(8);
        let s = self.store.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = s.save(&names, ChannelWriter::new(tx)) {
                tracing::error!(error = %chain(&e), "save");
            }
        });
        Ok(rx)
    }

    /// `POST /images/create?fromImage=`: checks what to pull (errors here come
    /// before any progress), then pulls in the background, progress lines and a
    /// final error line on the returned channel.
    /// The registry settings in force (for `/info`).
    pub fn registry_config(&self) -> super::pull::RegistryConfig {
        self.puller.current_config()
    }

    /// New registry settings (a configuration reload).
    pub fn set_registry_config(&self, c: super::pull::RegistryConfig) {
        self.puller.set_config(c);
    }

    /// `GET /distribution/{name}/json`.
    pub async fn distribution(
        &self,
        name: &str,
        creds: Option<Credentials>,
    ) -> ApiResult<serde_json::Value> {
        self.puller.distribution(name, creds).await
    }

    pub async fn pull(
        self: &Arc<Self>,
        image: &str,
        tag: &str,
        platform: Option<&str>,
        creds: Option<Credentials>,
    ) -> ApiResult<mpsc::Receiver<Bytes>> {
        let plan: PullPlan = self.puller.plan(image, tag, platform, creds).await?;
        let (tx, rx) = mpsc::channel(64);
        let me = self.clone();
        tokio::spawn(async move {
            match me.puller.run(plan, &tx).await {
                Ok(id) => me.emit("pull", &id),
                Err(e) => error_line(&tx, &e).await,
            }
        });
        Ok(rx)
    }

    /// `POST /images/{name}/push`: the image must exist before the stream starts.
    pub fn push(
        self: &Arc<Self>,
        name: &str,
        tag: &str,
        creds: Option<Credentials>,
    ) -> ApiResult<mpsc::Receiver<Bytes>> {
        let local = match berth_image::reference::Reference::parse(name) {
            Ok(r) if tag.is_empty() => r.tagged().unwrap_or(name.to_string()),
            Ok(r) => format!("{}:{tag}", r.repo),
            Err(_) => name.to_string(),
        };
        if self.store.resolve(&local).is_err() {
            return Err(ApiError::not_found(format!(
                "An image does not exist locally with the tag: {}",
                name.split(':').next().unwrap_or(name)
            )));
        }
        let (tx, rx) = mpsc::channel(64);
        let me = self.clone();
        let (name, tag) = (name.to_string(), tag.to_string());
        tokio::spawn(async move {
            match me.puller.push(&name, &tag, creds, &tx).await {
                Ok(_) => me.emit("push", &local),
                Err(e) => error_line(&tx, &e).await,
            }
        });
        Ok(rx)
    }

    /// `POST /auth`.
    pub async fn login(&self, server: &str, creds: Credentials) -> ApiResult<()> {
        self.puller.login(server, creds).await
    }
}

/// A stream's last line when it fails: Docker's `error` and `errorDetail`.
use crate::daemon::stream::error_line;
