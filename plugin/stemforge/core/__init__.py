"""The real-time data path: host layout, resampling, block engines, the model seam, processors."""
