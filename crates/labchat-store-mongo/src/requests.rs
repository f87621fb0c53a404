//! Reading the lab system's requests: one by id ([`labchat_core::ChatStore::find_request`],
//! coalesced with the other lookups in flight into one query, see `gather.rs`), or many at once
//! ([`labchat_core::ChatStore::find_requests`]), projected to their creator's field.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::TryStreamExt;
use labchat_core::StoreError;
use labchat_domain::{ObjectIdBytes, Request, RequestId};
use mongodb::Collection;
use mongodb::bson::{Bson, Document, doc};

use crate::MongoStore;
use crate::documents::{object_id, request_of};
use crate::errors::bounded;
use crate::gather::{Fetched, Gather, batch_of};

/// Where the requests are read from: the lab system's collection and its creator field.
#[derive(Clone, Debug)]
pub(crate) struct Requests {
    pub(crate) collection: Collection<Document>,
    pub(crate) creator_field: String,
    pub(crate) op_timeout: Duration,
}

impl Requests {
    /// The projection of a request: the top-level field of its creator only. A dotted
    /// projection comes back flattened from some servers (the test server among them), a whole
    /// sub-document comes back the same from all.
    fn creator_projection(&self) -> Document {
        let top = self.creator_field.split('.').next().unwrap_or_default();
        let mut projection = Document::new();
        projection.insert(top, 1);
        projection.insert("_id", 1);
        projection
    }

    /// The requests among `ids` that exist, with one query.
    pub(crate) async fn find(&self, ids: &[RequestId]) -> Result<Vec<Request>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let wanted: Vec<Bson> = ids.iter().map(|id| Bson::ObjectId(object_id(id.object_id()))).collect();
        let docs: Vec<Document> = bounded(self.op_timeout, "find requests", async {
            self.collection
                .find(doc! {"_id": {"$in": wanted}})
                .projection(self.creator_projection())
                .batch_size(batch_of(ids.len()))
                .await?
                .try_collect()
                .await
        })
        .await?;
        Ok(docs
            .iter()
            .filter_map(|doc| {
                let oid = doc.get_object_id("_id").ok()?;
                let id = RequestId::from_object_id(ObjectIdBytes::from_bytes(oid.bytes()));
                Some(request_of(id, doc, &self.creator_field))
            })
            .collect())
    }

    /// The coalesced lookup of single requests.
    pub(crate) fn gather(&self) -> Gather<RequestId, Request> {
        let requests = self.clone();
        Gather::start("find a request", self.op_timeout, move |ids: Vec<RequestId>| {
            let requests = requests.clone();
            async move {
                let found: Fetched<RequestId, Request> = requests
                    .find(&ids)
                    .await
                    .map(|found| found.into_iter().map(|r| (r.id(), r)).collect::<HashMap<_, _>>());
                found
            }
        })
    }
}

impl MongoStore {
    /// [`labchat_core::ChatStore::find_request`].
    pub(crate) async fn find_request_of(&self, id: RequestId) -> Result<Option<Request>, StoreError> {
        self.request_reads.get(id).await
    }

    /// [`labchat_core::ChatStore::find_requests`].
    pub(crate) async fn find_requests_of(&self, ids: &[RequestId]) -> Result<Vec<Request>, StoreError> {
        self.requests.find(ids).await
    }
}
