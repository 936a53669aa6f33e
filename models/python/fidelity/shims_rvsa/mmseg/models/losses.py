def accuracy(*args, **kwargs):
    raise NotImplementedError
