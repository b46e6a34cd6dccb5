//! COPY and ADD: sources from the context, another stage, an image or URLs.

use super::{digest, BuildError, Shared, State, COMMENT};
use crate::backend::Backend;
use crate::backend::View;
use crate::copy::{Request, Selection};
use crate::ignore::Ignore;
use crate::instruction::Copy;
use crate::rootfs::{lookup_user, Layers};
use crate::shell::Vars;
use berth_api::{HistoryEntry, ImageConfigBlob};
use sha2::{Digest, Sha256};
use std::sync::Arc;

impl<B: Backend> Shared<B> {
    pub(super) async fn copy(
        self: &Arc<Self>,
        stage: usize,
        state: State,
        mut cfg: ImageConfigBlob,
        node: &crate::parser::Node,
        copy: &Copy,
        vars: &Vars,
    ) -> Result<State, BuildError> {
        let word = if copy.add { "ADD" } else { "COPY" };
        let c = cfg.config.get_or_insert_with(Default::default);
        let mut srcs = Vec::new();
        let heredoc_names: Vec<&str> = copy.heredocs.iter().map(|h| h.name.as_str()).collect();
        let mut inline = Vec::new();
        for s in &copy.srcs {
            let plain = s
                .trim_start_matches("<<")
                .trim_start_matches('-')
                .trim_matches(['"', '\'']);
            if s.starts_with("<<") && heredoc_names.contains(&plain) {
                let h = copy
                    .heredocs
                    .iter()
                    .find(|h| h.name == plain)
                    .expect("named");
                let content = if h.expand {
                    self.expand(node, &h.content, vars)?
                } else {
                    h.content.clone()
                };
                inline.push((h.name.clone(), content.into_bytes()));
                continue;
            }
            let e = self.expand(node, s, vars)?;
            srcs.push(e);
        }
        let dest_raw = self.expand(node, &copy.dest, vars)?;
        let wd = if c.working_dir.is_empty() {
            "/".to_string()
        } else {
            c.working_dir.clone()
        };
        let mut dest = if dest_raw.starts_with('/') {
            dest_raw.clone()
        } else {
            format!("{}/{dest_raw}", wd.trim_end_matches('/'))
        };
        if (dest_raw.ends_with('/') || dest_raw == "." || dest_raw.ends_with("/."))
            && !dest.ends_with('/')
        {
            dest.push('/');
        }
        let dirs = self.backend.layer_dirs(&state.snap);
        let layers = Layers { dirs: &dirs };
        // The destination's symlinked parents are followed inside the image.
        let dest_resolved = {
            let trailing = dest.ends_with('/');
            let mut d = layers.resolve(&dest, true);
            if trailing && !d.ends_with('/') {
                d.push('/');
            }
            d
        };
        let owner = match &copy.chown {
            None => None,
            Some(o) => {
                let o = self.expand(node, o, vars)?;
                Some(lookup_user(&layers, &o).map_err(|m| self.step_err(node, m))?)
            }
        };
        let chmod = match &copy.chmod {
            None => None,
            Some(m) => Some(
                u32::from_str_radix(m, 8)
                    .ok()
                    .filter(|m| *m <= 0o7777)
                    .ok_or_else(|| {
                        self.step_err(
                            node,
                            format!(
                                "invalid chmod parameter {m:?}: only octal modes are supported"
                            ),
                        )
                    })?,
            ),
        };
        let exclude = Ignore::parse(&copy.exclude.join("\n"))
            .map_err(|e| self.step_err(node, e.to_string()))?;
        let mut view = None;
        // ADD of URLs: the files are fetched into a directory of their own (a
        // repository is cloned), and copied from there; never unpacked.
        let remote: Vec<&String> = srcs
            .iter()
            .filter(|s| copy.add && crate::copy::is_url(s))
            .collect();
        let mut fetched_root = None;
        let mut unpack = copy.add && copy.unpack != Some(false);
        if !remote.is_empty() {
            if remote.len() != srcs.len() {
                return Err(self.step_err(node, "ADD with both URLs and local files is not supported by berth yet: use two ADDs"));
            }
            let dir = self
                .backend
                .scratch()
                .join(format!("add-{}", digest(&[&state.key, &node.original])));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).map_err(|e| self.step_err(node, e.to_string()))?;
            let mut names = Vec::new();
            for url in remote {
                if crate::copy::is_git_url(url) {
                    let src = self
                        .backend
                        .clone_git(url, &dir.join("repo"), copy.keep_git_dir)
                        .await
                        .map_err(|m| self.step_err(node, m))?;
                    let rel = src
                        .strip_prefix(&dir)
                        .unwrap_or(&src)
                        .to_string_lossy()
                        .into_owned();
                    names.push(rel);
                    continue;
                }
                let name = url
                    .split(['?', '#'])
                    .next()
                    .unwrap_or(url)
                    .rsplit('/')
                    .find(|s| !s.is_empty() && !s.contains(':'))
                    .unwrap_or("download")
                    .to_string();
                let path = dir.join(&name);
                let modified = self
                    .backend
                    .fetch(url, &path)
                    .await
                    .map_err(|m| self.step_err(node, m))?;
                if let Some(want) = &copy.checksum {
                    let data =
                        std::fs::read(&path).map_err(|e| self.step_err(node, e.to_string()))?;
                    let got = format!("sha256:{}", hex::encode(Sha256::digest(&data)));
                    if &got != want {
                        return Err(self.step_err(node, format!("digest mismatch {got}: {want}")));
                    }
                }
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
                if let Some(t) = modified {
                    let _ = std::fs::File::options()
                        .write(true)
                        .open(&path)
                        .and_then(|f| {
                            f.set_modified(
                                std::time::UNIX_EPOCH + std::time::Duration::from_secs(t),
                            )
                        });
                }
                names.push(name);
            }
            srcs = names;
            unpack = false;
            fetched_root = Some(dir);
        } else if copy.checksum.is_some() {
            return Err(self.step_err(node, "ADD --checksum is only for sources given by URL"));
        }
        let (root, ignore) = match (&copy.from, fetched_root) {
            (_, Some(dir)) => (dir, None),
            (None, None) => (self.context.dir.clone(), Some(&self.context.ignore)),
            (Some(f), None) => {
                let f = self.expand(node, f, vars)?;
                let snap = self.state_named(stage, node, &f).await?;
                let v = self
                    .backend
                    .view(&snap)
                    .map_err(|m| self.step_err(node, m))?;
                let p = v.path().to_path_buf();
                view = Some(v);
                (p, None)
            }
        };
        let req = Request {
            instruction: word,
            root: &root,
            srcs: &srcs,
            inline: &inline,
            dest: &dest_resolved,
            dest_is_dir: layers.is_dir(&dest_resolved),
            owner,
            chmod,
            parents: copy.parents,
            exclude: &exclude,
            ignore,
            unpack,
        };
        let sel = tokio::task::block_in_place(|| Selection::select(&req))
            .map_err(|e| self.step_err(node, e.to_string()))?;
        let shown = copy.srcs.join(" ");
        let created_by = format!("{word} {shown} {dest_raw} # buildkit");
        let key = digest(&[
            &state.key,
            word,
            &sel.checksum,
            &dest_resolved,
            &format!("{owner:?}{chmod:?}{}", copy.parents),
        ]);
        if let Some(hit) = self.cached(&key) {
            return self.use_cached(state, key, hit);
        }
        if let Some(r) = self.try_import(&state, &key, &cfg.clone()).await {
            return r;
        }
        let path = self.backend.scratch().join(format!("copy-{key}.tar"));
        let file = std::fs::File::create(&path).map_err(|e| self.step_err(node, e.to_string()))?;
        let w = std::io::BufWriter::new(file);
        tokio::task::block_in_place(|| sel.write_tar(&layers, w))
            .map_err(|e| self.step_err(node, e.to_string()))?;
        drop(view);
        let layer = self
            .backend
            .add_layer(&path)
            .await
            .map_err(|m| self.step_err(node, m));
        let _ = std::fs::remove_file(&path);
        let layer = layer?;
        cfg.history.push(HistoryEntry {
            created: Some(self.opts.created.clone()),
            created_by: Some(created_by),
            author: None,
            comment: Some(COMMENT.into()),
            empty_layer: layer.is_none(),
        });
        self.finish_step(state, key, cfg, layer).await
    }
}
