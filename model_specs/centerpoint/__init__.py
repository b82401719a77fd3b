"""CenterPoint (PointPillars encoder, SECOND/SECONDFPN, CenterHead) as AWML deploys it."""
