//! Reading the lab system's requests: one by id ([`labchat_core::ChatStore::find_request`]), or
//! many at once ([`labchat_core::ChatStore::find_requests`]), projected to their creator's field.

use futures_util::TryStreamExt;
use labchat_core::StoreError;
use labchat_domain::{ObjectIdBytes, Request, RequestId};
use mongodb::bson::{Bson, Document, doc};

use crate::MongoStore;
use crate::documents::{object_id, request_of};
use crate::errors::bounded;

impl MongoStore {
    /// The projection of a request: the top-level field of its creator only. A dotted
    /// projection comes back flattened from some servers (the test server among them), a whole
    /// sub-document comes back the same from all.
    fn creator_projection(&self) -> Document {
        let top = self.creator_field.split('.').next().unwrap_or_default();
        let mut projection = Document::new();
        projection.insert(top, 1);
        projection
    }

    /// [`labchat_core::ChatStore::find_request`].
    pub(crate) async fn find_request_of(&self, id: RequestId) -> Result<Option<Request>, StoreError> {
        let filter = doc! {"_id": object_id(id.object_id())};
        let find = self.requests.find_one(filter).projection(self.creator_projection());
        let found = bounded(self.op_timeout, "find a request", find).await?;
        Ok(found.map(|doc| request_of(id, &doc, &self.creator_field)))
    }

    /// [`labchat_core::ChatStore::find_requests`].
    pub(crate) async fn find_requests_of(&self, ids: &[RequestId]) -> Result<Vec<Request>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let wanted: Vec<Bson> = ids.iter().map(|id| Bson::ObjectId(object_id(id.object_id()))).collect();
        let mut projection = self.creator_projection();
        projection.insert("_id", 1);
        let docs: Vec<Document> = bounded(self.op_timeout, "find requests", async {
            self.requests.find(doc! {"_id": {"$in": wanted}}).projection(projection).await?.try_collect().await
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
}
