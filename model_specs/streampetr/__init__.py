"""AWML's StreamPETR multi-camera 3D detector (projects/StreamPETR), exported in its deploy sections with its memory queue."""
