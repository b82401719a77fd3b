def to_streampetr(config, base):
    raise NotImplementedError
