"""svdlab studio (`svdlab serve`): a FastAPI app and page over a job queue kept in the runs folder's store."""
