"""`specc train`: data sets, augmentation, fitted preprocessing and the training loop."""
