//! Reading `template.yaml` (AWS SAM).
