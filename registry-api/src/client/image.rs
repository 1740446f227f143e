//! The Image API (`/apis/image/v1`, `docs/image-api.md`), with helpers that
//! follow its pages.

use registry_core::{Digest, Namespace, RepositoryName, Tag};
use serde::de::DeserializeOwned;

use super::distribution::json;
use super::{pairs, Client, ClientError, Page};
use crate::model::image::{
    Image, ImageNamespace, ImageStream, ImageStreamList, ImageStreamTag, RepositoryList,
};

impl Client {
    async fn image_api<T: DeserializeOwned>(
        &self,
        path: &[&str],
        page: &Page,
    ) -> Result<T, ClientError> {
        let mut segments = vec!["apis", "image", "v1"];
        segments.extend_from_slice(path);
        let query = page.query();
        let url = self.url(&segments, &pairs(&query));
        json(self.primary(|http| http.get(url.clone())).await?).await
    }

    /// A namespace with its usage and quota (`GET …/namespaces/{ns}`).
    pub async fn image_namespace(&self, ns: &Namespace) -> Result<ImageNamespace, ClientError> {
        self.image_api(&["namespaces", ns.as_str()], &Page::first())
            .await
    }

    /// A page of a namespace's ImageStreams (`metadata.continue_from` is the
    /// next page's `last`).
    pub async fn image_streams(
        &self,
        ns: &Namespace,
        page: &Page,
    ) -> Result<ImageStreamList, ClientError> {
        self.image_api(&["namespaces", ns.as_str(), "imagestreams"], page)
            .await
    }

    /// Every ImageStream of a namespace, following the pages (each with the
    /// first tags only, as listed), in one list.
    pub async fn all_image_streams(&self, ns: &Namespace) -> Result<ImageStreamList, ClientError> {
        let mut list = self.image_streams(ns, &Page::first()).await?;
        while let Some(last) = list.metadata.continue_from.take() {
            let mut page = self.image_streams(ns, &Page::after(last)).await?;
            if page.items.is_empty() {
                break;
            }
            list.items.append(&mut page.items);
            list.metadata.continue_from = page.metadata.continue_from;
        }
        Ok(list)
    }

    /// An ImageStream with a page of its tags (`status.tags_continue` is the
    /// next page's `last`).
    pub async fn image_stream(
        &self,
        repo: &RepositoryName,
        page: &Page,
    ) -> Result<ImageStream, ClientError> {
        let mut path = vec!["namespaces", repo.namespace(), "imagestreams"];
        path.extend(repo.stream().split('/'));
        self.image_api(&path, page).await
    }

    /// Deletes an ImageStream with its tags and manifests
    /// (`DELETE …/imagestreams/{name}`, registry-admin).
    pub async fn delete_image_stream(&self, repo: &RepositoryName) -> Result<(), ClientError> {
        let mut segments = vec!["apis", "image", "v1", "namespaces", repo.namespace()];
        segments.push("imagestreams");
        segments.extend(repo.stream().split('/'));
        let url = self.url(&segments, &[]);
        self.primary(|http| http.delete(url.clone()))
            .await
            .map(drop)
    }

    /// An ImageStream with all its tags, following the pages.
    pub async fn image_stream_all_tags(
        &self,
        repo: &RepositoryName,
    ) -> Result<ImageStream, ClientError> {
        let mut stream = self.image_stream(repo, &Page::first()).await?;
        while let Some(last) = stream.status.tags_continue.take() {
            let mut page = self.image_stream(repo, &Page::after(last)).await?;
            if page.status.tags.is_empty() {
                break;
            }
            stream.status.tags.append(&mut page.status.tags);
            stream.status.tags_continue = page.status.tags_continue;
        }
        Ok(stream)
    }

    /// A tag's current target and a page of its history, newest first
    /// (`history_continue` is the next page's `last`).
    pub async fn image_stream_tag(
        &self,
        repo: &RepositoryName,
        tag: &Tag,
        page: &Page,
    ) -> Result<ImageStreamTag, ClientError> {
        let mut path = vec!["namespaces", repo.namespace(), "imagestreamtags"];
        let last = format!("{}:{tag}", repo.stream());
        path.extend(last.split('/'));
        self.image_api(&path, page).await
    }

    /// A tag with its whole history, following the pages; its
    /// `creation_timestamp` is then the first move's time.
    pub async fn image_stream_tag_history(
        &self,
        repo: &RepositoryName,
        tag: &Tag,
    ) -> Result<ImageStreamTag, ClientError> {
        let mut doc = self.image_stream_tag(repo, tag, &Page::first()).await?;
        while let Some(last) = doc.history_continue.take() {
            let mut page = self.image_stream_tag(repo, tag, &Page::after(last)).await?;
            if page.history.is_empty() {
                break;
            }
            doc.history.append(&mut page.history);
            doc.history_continue = page.history_continue;
        }
        if doc.metadata.creation_timestamp.is_none() && doc.history_continue.is_none() {
            doc.metadata.creation_timestamp = doc.history.last().map(|e| e.created.clone());
        }
        Ok(doc)
    }

    /// An image's metadata by digest.
    pub async fn image(&self, digest: &Digest) -> Result<Image, ClientError> {
        self.image_api(&["images", digest.as_str()], &Page::first())
            .await
    }

    /// A page of the repositories the caller may pull
    /// (`metadata.continue_from` is the next page's `last`).
    pub async fn visible_repositories(&self, page: &Page) -> Result<RepositoryList, ClientError> {
        self.image_api(&["repositories"], page).await
    }

    /// Every repository the caller may pull, following the pages, in one list.
    pub async fn all_visible_repositories(&self) -> Result<RepositoryList, ClientError> {
        let mut list = self.visible_repositories(&Page::first()).await?;
        while let Some(last) = list.metadata.continue_from.take() {
            let mut page = self.visible_repositories(&Page::after(last)).await?;
            if page.items.is_empty() {
                break;
            }
            list.items.append(&mut page.items);
            list.metadata.continue_from = page.metadata.continue_from;
        }
        Ok(list)
    }
}
