"""The job store's revisions, oldest first: 0001 the first released schema, then one file per change."""
