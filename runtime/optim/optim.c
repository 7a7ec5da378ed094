/* optim.c - the optimizer registry: kind -> update rule. The rules live one per file. */
#include "tk_int.h"

extern const tk_optim_def tk_optim_sgd, tk_optim_adam, tk_optim_adamw, tk_optim_rmsprop,
    tk_optim_adagrad;

const tk_optim_def *tk_optim_def_of(tk_optim_kind k)
{
    switch (k) {
    case TK_OPT_SGD:
        return &tk_optim_sgd;
    case TK_OPT_ADAM:
        return &tk_optim_adam;
    case TK_OPT_ADAMW:
        return &tk_optim_adamw;
    case TK_OPT_RMSPROP:
        return &tk_optim_rmsprop;
    case TK_OPT_ADAGRAD:
        return &tk_optim_adagrad;
    default:
        return NULL;
    }
}

const char *tk_optim_kind_name(tk_optim_kind k)
{
    const tk_optim_def *d = tk_optim_def_of(k);
    return d ? d->name : "?";
}
