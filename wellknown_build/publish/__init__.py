"""Publishing the rendered tree to S3 (or an S3-compatible store) and CloudFront.

The only package that imports boto3 (in run.py and below; importing the package itself does
not, so that `render` starts without it).
"""
