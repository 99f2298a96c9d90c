//! User-defined functions (`let f = (x: long, T: (*)) { ... }`), inlined where they are called:
//! the plan is the one the body would give written there, so the query's time filters still
//! reach the scans. A function sees the names defined before it (not itself: recursion is
//! refused), its parameters shadow columns of the same name.

use fimlake_kusto::KustoType;

use super::*;

/// The most nested user-function calls (a chain of functions calling each other).
const MAX_CALL_DEPTH: usize = 64;

/// A `let` function: its parameters, its body and the names visible where it was defined.
pub(super) struct UserFunction {
    name: String,
    params: Vec<Param>,
    /// Each parameter's type, read from its text once, when the function is defined.
    types: Vec<ParamType>,
    body: Query,
    scope: HashMap<String, Binding>,
}

/// A parameter's declared type.
enum ParamType {
    Scalar(KustoType),
    /// The columns the argument must have (none for `(*)`).
    Tabular(Vec<(String, KustoType)>),
}

/// What a parameter is bound to for one call.
enum Argument {
    Scalar(DfExpr),
    Tabular(LogicalPlan),
}

/// Arguments given by name: the parameter's name and the value.
type NamedArguments<'e> = Vec<(&'e Ident, &'e Expr)>;

impl Planner<'_> {
    /// `let name = (params) { body }`: checks the parameters and keeps the function.
    pub(super) fn define_function(&mut self, l: &Let, params: &[Param], body: &Query) -> PResult<Binding> {
        let mut seen_default = false;
        let mut types = Vec::new();
        for (i, param) in params.iter().enumerate() {
            types.push(self.param_type(param)?);
            if params[..i].iter().any(|earlier| earlier.name.name == param.name.name) {
                let message = format!("the parameter '{}' is declared twice", param.name.name);
                return Err(self.err(ErrorKind::Semantic, message, param.name.span));
            }
            if seen_default && param.default.is_none() {
                let message =
                    format!("the parameter '{}' needs a default: it follows one with a default", param.name.name);
                return Err(self.err(ErrorKind::Semantic, message, param.name.span));
            }
            seen_default |= param.default.is_some();
        }
        Ok(Binding::Function(Arc::new(UserFunction {
            name: l.name.name.clone(),
            params: params.to_vec(),
            types,
            body: body.clone(),
            scope: self.lets.clone(),
        })))
    }

    /// The user function `name`, if a `let` visible here defines one.
    pub(super) fn user_function(&self, name: &Ident) -> PResult<Option<Arc<UserFunction>>> {
        if let Some(Binding::Function(function)) = self.lets.get(&name.name) {
            return Ok(Some(function.clone()));
        }
        if self.calling.contains(&name.name) {
            let message = format!(
                "the function '{}' calls itself: recursive functions are not supported (nor in Kusto)",
                name.name
            );
            return Err(self.err(ErrorKind::Semantic, message, name.span));
        }
        Ok(None)
    }

    /// `f(args)` where a scalar is expected: the body, a scalar expression, with the arguments
    /// in place of the parameters.
    pub(super) fn call_scalar_function(
        &mut self,
        function: &UserFunction,
        args: &[Expr],
        schema: &DFSchema,
        span: Span,
    ) -> PResult<DfExpr> {
        let body = match &function.body.body.source {
            Source::Expr(e) if !self.is_tabular(function) => e.clone(),
            _ => {
                let message = format!(
                    "{}() is a tabular function; a scalar is expected here (toscalar({}()) makes one)",
                    function.name, function.name
                );
                return Err(self.err(ErrorKind::Semantic, message, span));
            }
        };
        let arguments = self.arguments(function, None, args, schema, span)?;
        self.inside(function, arguments, span, |planner| planner.scalar(&body, schema))
    }

    /// `f(args)` as a tabular expression, or `input | invoke f(args)` (`input` its first
    /// argument).
    pub(super) fn call_tabular_function(
        &mut self,
        function: &UserFunction,
        input: Option<LogicalPlan>,
        args: &[Expr],
        span: Span,
    ) -> PResult<LogicalPlan> {
        let arguments = self.arguments(function, input, args, &DFSchema::empty(), span)?;
        let body = function.body.body.clone();
        self.inside(function, arguments, span, |planner| planner.pipeline(&body))
    }

    /// Whether `e` calls a user function that returns a table.
    pub(super) fn is_tabular_call(&self, e: &Expr) -> bool {
        match &e.kind {
            ExprKind::Call { name, .. } => {
                matches!(self.lets.get(&name.name), Some(Binding::Function(function)) if self.is_tabular(function))
            }
            _ => false,
        }
    }

    /// Whether the function returns a table: its body has operators, or is a table's name.
    fn is_tabular(&self, function: &UserFunction) -> bool {
        match (&function.body.body.source, function.body.body.ops.as_slice()) {
            (Source::Expr(e), []) => self.is_tabular_body(function, e),
            _ => true,
        }
    }

    /// Whether a body that is one expression names a table (then it is tabular).
    fn is_tabular_body(&self, function: &UserFunction, e: &Expr) -> bool {
        match &e.kind {
            ExprKind::Pipeline(_) => true,
            ExprKind::Name(n) => {
                function
                    .params
                    .iter()
                    .zip(&function.types)
                    .any(|(p, ty)| &p.name.name == n && matches!(ty, ParamType::Tabular(_)))
                    || matches!(function.scope.get(n), Some(Binding::Tabular(_)))
                    || (self.catalog.table(n).is_some() && !function.params.iter().any(|p| &p.name.name == n))
            }
            _ => false,
        }
    }

    /// Plans `plan_body` with the function's scope and its parameters bound, then puts the
    /// caller's names back.
    fn inside<T>(
        &mut self,
        function: &UserFunction,
        arguments: Vec<(String, Argument)>,
        span: Span,
        plan_body: impl FnOnce(&mut Self) -> PResult<T>,
    ) -> PResult<T> {
        if self.calling.len() >= MAX_CALL_DEPTH {
            let message = format!("user functions nest more than {MAX_CALL_DEPTH} calls deep");
            return Err(self.err(ErrorKind::Semantic, message, span));
        }
        let mut lets = function.scope.clone();
        let mut parameters = HashMap::new();
        for (name, argument) in arguments {
            match argument {
                Argument::Scalar(value) => {
                    lets.remove(&name);
                    parameters.insert(name, value);
                }
                Argument::Tabular(plan) => {
                    lets.insert(name, Binding::Tabular(plan));
                }
            }
        }
        let caller_lets = std::mem::replace(&mut self.lets, lets);
        let caller_parameters = std::mem::replace(&mut self.parameters, parameters);
        self.calling.push(function.name.clone());
        let result = function.body.lets.iter().try_for_each(|l| self.bind_let(l)).and_then(|()| plan_body(self));
        self.calling.pop();
        self.lets = caller_lets;
        self.parameters = caller_parameters;
        result
    }

    /// Each parameter with its argument: the one given, else the default.
    fn arguments(
        &mut self,
        function: &UserFunction,
        input: Option<LogicalPlan>,
        args: &[Expr],
        schema: &DFSchema,
        span: Span,
    ) -> PResult<Vec<(String, Argument)>> {
        let given = args.len() + usize::from(input.is_some());
        if given > function.params.len() {
            let message = format!("{}() takes {} argument(s), got {given}", function.name, function.params.len());
            return Err(self.err(ErrorKind::Semantic, message, span));
        }
        let (positional, named) = self.split_named(function, args)?;
        let mut input = input;
        let mut args = positional.into_iter();
        let mut arguments = Vec::new();
        for (param, ty) in function.params.iter().zip(&function.types) {
            let by_name = named.iter().find(|(name, _)| name.name == param.name.name).map(|(_, value)| *value);
            let argument = if let Some(plan) = input.take() {
                self.tabular_argument(function, param, ty, plan, span)?
            } else if let Some(arg) = args.next().or(by_name) {
                if by_name.is_some() && !std::ptr::eq(arg, by_name.expect("checked")) {
                    let message = format!("{}() is given its parameter '{}' twice", function.name, param.name.name);
                    return Err(self.err(ErrorKind::Semantic, message, arg.span));
                }
                match ty {
                    ParamType::Tabular(_) => {
                        let plan = self.tabular_expr(arg)?;
                        self.tabular_argument(function, param, ty, plan, arg.span)?
                    }
                    ParamType::Scalar(kusto) => {
                        let value = self.scalar(arg, schema)?;
                        Argument::Scalar(self.scalar_argument(function, param, *kusto, value, schema, arg.span)?)
                    }
                }
            } else if let (Some(default), ParamType::Scalar(kusto)) = (&param.default, ty) {
                let value = self.scalar(default, &DFSchema::empty())?;
                Argument::Scalar(self.scalar_argument(
                    function,
                    param,
                    *kusto,
                    value,
                    &DFSchema::empty(),
                    default.span,
                )?)
            } else {
                let message = format!("{}() needs an argument for its parameter '{}'", function.name, param.name.name);
                return Err(self.err(ErrorKind::Semantic, message, span));
            };
            arguments.push((param.name.name.clone(), argument));
        }
        Ok(arguments)
    }

    /// The arguments given by position, then those given by name (`f(1, y = 2)`); a name must
    /// be a parameter's, and no argument by position may follow one by name.
    fn split_named<'e>(
        &self,
        function: &UserFunction,
        args: &'e [Expr],
    ) -> PResult<(Vec<&'e Expr>, NamedArguments<'e>)> {
        let mut positional = Vec::new();
        let mut named: NamedArguments = Vec::new();
        for arg in args {
            match &arg.kind {
                ExprKind::NamedArg { name, value } => {
                    if !function.params.iter().any(|p| p.name.name == name.name) {
                        let params: Vec<&str> = function.params.iter().map(|p| p.name.name.as_str()).collect();
                        let message = format!(
                            "{}() has no parameter '{}' (its parameters: {})",
                            function.name,
                            name.name,
                            params.join(", ")
                        );
                        return Err(self.err(ErrorKind::Semantic, message, name.span));
                    }
                    if named.iter().any(|(given, _)| given.name == name.name) {
                        let message = format!("{}() is given its parameter '{}' twice", function.name, name.name);
                        return Err(self.err(ErrorKind::Semantic, message, name.span));
                    }
                    named.push((name, value));
                }
                _ if !named.is_empty() => {
                    let message = format!("{}(): an argument by position cannot follow one by name", function.name);
                    return Err(self.err(ErrorKind::Semantic, message, arg.span));
                }
                _ => positional.push(arg),
            }
        }
        Ok((positional, named))
    }

    /// A scalar argument converted to its parameter's type: numbers convert to each other, a
    /// null to anything; other types must match.
    fn scalar_argument(
        &self,
        function: &UserFunction,
        param: &Param,
        declared: KustoType,
        value: DfExpr,
        schema: &DFSchema,
        span: Span,
    ) -> PResult<DfExpr> {
        let (actual, actual_type) = self.kusto_type(&value, schema, span)?;
        let fits = match actual {
            None => actual_type == DataType::Null,
            Some(actual) => actual == declared || (actual.is_numeric() && declared.is_numeric()),
        };
        if !fits {
            let message = format!(
                "the argument for '{}' of {}() must be {}, got {}",
                param.name.name,
                function.name,
                declared.name(),
                actual.map_or("null", KustoType::name)
            );
            return Err(self.err(ErrorKind::Semantic, message, span));
        }
        Ok(match declared {
            KustoType::Dynamic if actual_type == DataType::Null => crate::udf::dynamic_lit(&serde_json::Value::Null),
            KustoType::Dynamic => value,
            _ if actual == Some(declared) => value,
            _ => cast(value, declared.arrow_type()),
        })
    }

    /// A tabular argument, checked to have the columns its parameter declares.
    fn tabular_argument(
        &self,
        function: &UserFunction,
        param: &Param,
        ty: &ParamType,
        plan: LogicalPlan,
        span: Span,
    ) -> PResult<Argument> {
        let ParamType::Tabular(columns) = ty else {
            let message = format!(
                "the parameter '{}' of {}() is a scalar; a tabular argument was given",
                param.name.name, function.name
            );
            return Err(self.err(ErrorKind::Semantic, message, span));
        };
        for (column, kusto) in columns {
            let found = plan.schema().field_with_unqualified_name(column).ok().map(|f| KustoType::of_field(f));
            if found != Some(*kusto) {
                let message = format!(
                    "the argument for '{}' of {}() has no column {column} of type {}",
                    param.name.name,
                    function.name,
                    kusto.name()
                );
                return Err(self.err(ErrorKind::Semantic, message, span));
            }
        }
        Ok(Argument::Tabular(plan))
    }

    /// A parameter's type from its text: a Kusto type name, or `(*)` / `(column: type, ...)`.
    fn param_type(&self, param: &Param) -> PResult<ParamType> {
        let unknown = |ty: &str| {
            self.err(
                ErrorKind::Semantic,
                format!("unknown type '{ty}' for the parameter '{}'", param.name.name),
                param.name.span,
            )
        };
        let Some(columns) = param.ty.strip_prefix('(').and_then(|t| t.strip_suffix(')')) else {
            return KustoType::from_name(&param.ty).map(ParamType::Scalar).ok_or_else(|| unknown(&param.ty));
        };
        if columns == "*" {
            return Ok(ParamType::Tabular(Vec::new()));
        }
        let mut declared = Vec::new();
        for column in columns.split(", ") {
            let (name, ty) = column.split_once(':').ok_or_else(|| unknown(column))?;
            declared.push((name.to_string(), KustoType::from_name(ty).ok_or_else(|| unknown(ty))?));
        }
        Ok(ParamType::Tabular(declared))
    }
}
