"""Human pose estimation networks: keypoint heatmaps out."""
